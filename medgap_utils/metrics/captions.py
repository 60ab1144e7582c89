"""Caption metrics: n-gram overlap (BLEU, ROUGE-L, CIDEr, METEOR) and clinical correctness.

Overlap metrics come from pycocoevalcap's scorers, fed with captions tokenized
by :func:`tokenize_caption`. That tokenizer replaces the PTB tokenizer of the
COCO evaluation, which needs Java and a Stanford jar. It lowercases and keeps
runs of letters and digits joined by internal hyphens, apostrophes or decimal
points as one token ("x-ray", "t2-weighted", "12.5"). It drops punctuation,
as the COCO pipeline drops it after PTB tokenization.

Two facts about the scorers change how numbers compare across tables:

- CIDEr is pycocoevalcap's CIDEr-D (clipped n-gram counts, a Gaussian length
  penalty with sigma 6, scaled by 10). Its document frequencies come from the
  references of the evaluated set, so values depend on which captions are
  scored together, and a set of one caption always scores 0.
- BLEU is corpus-level (n-gram counts summed over all captions, brevity
  penalty against the closest reference length), not a mean of sentence BLEU.

Clinical correctness (:func:`clinical_correctness`) parses each generated
caption for modality, anatomy, finding and side with a phrase vocabulary and
scores the parsed labels against ground truth, the analogue of the
clinical-efficacy metrics of radiology report generation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

LOGGER = logging.getLogger(__name__)

OVERLAP_METRIC_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr")
CLINICAL_FIELDS = ("modality", "anatomy", "finding", "side")

# Runs of letters/digits, joined by one internal hyphen, apostrophe or period,
# else any single non-space character (punctuation).
_TOKEN_PATTERN = re.compile(r"[^\W_]+(?:[-'.][^\W_]+)*|[^\w\s]|_")

NEGATION_PRE_CUES = (
    "no",
    "not",
    "without",
    "negative for",
    "free of",
    "absence of",
    "no evidence of",
    "ruled out",
)
NEGATION_POST_CUES = (
    "absent",
    "not seen",
    "not identified",
    "not present",
    "not visible",
    "ruled out",
    "excluded",
)
# A negation cue covers at most this many tokens after it (as in NegEx).
NEGATION_WINDOW = 6
# Tokens that end a negation scope early: clause boundaries. The comma is one,
# as in the phantom corpus's own parser, so "no effusion, right nodule" keeps
# the side of the nodule.
NEGATION_TERMINATORS = frozenset(
    {".", ",", ";", ":", "!", "?", "but", "however", "although", "though", "except", "yet", "whereas", "while"}
)
# Fields whose mentions a negation cue can cancel. A modality or anatomy stays
# what it is in "no effusion on this chest CT".
NEGATABLE_FIELDS = frozenset({"finding", "side"})
# Labels that any other label of their field overrides: "normal heart, small
# nodule" reports the nodule. A phrase of such a label is never negated
# ("no acute findings" means normal).
DEFAULT_WEAK_LABELS: Mapping[str, tuple[str, ...]] = {"finding": ("normal",)}
# The label a field has when a caption names none of its phrases: the phantom
# corpus labels images without a lateralized finding with side "none".
DEFAULT_ABSENT_LABELS: Mapping[str, str] = {"side": "none"}

UNPARSED_LABEL = "<unparsed>"


# ---------------------------------------------------------------------------
# Tokenization


def tokenize_caption(text: str, *, keep_punctuation: bool = False) -> list[str]:
    """Split a caption into lowercase tokens, the tokenizer of every caption metric.

    Args:
        text: one caption.
        keep_punctuation: keep punctuation characters as their own tokens
            (the caption decoder uses them); metrics drop them.

    Returns:
        The tokens, in order. An empty or punctuation-only caption gives ``[]``.

    Raises:
        TypeError: if ``text`` is not a string.

    Example:
        >>> tokenize_caption("Axial CT: 12.5 mm nodule, left X-ray.")
        ['axial', 'ct', '12.5', 'mm', 'nodule', 'left', 'x-ray']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    tokens = _TOKEN_PATTERN.findall(text.lower())
    if keep_punctuation:
        return tokens
    return [token for token in tokens if _is_word(token)]


def _is_word(token: str) -> bool:
    return any(character.isalnum() for character in token)


# ---------------------------------------------------------------------------
# Overlap metrics


def caption_metrics(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    meteor: bool | str | MeteorScorer = "auto",
) -> dict[str, float]:
    """Score generated captions against references with BLEU-1..4, ROUGE-L, CIDEr and METEOR.

    Every caption is tokenized with :func:`tokenize_caption` first, and the
    pycocoevalcap scorers run on the space-joined tokens.

    Args:
        predictions: N generated captions.
        references: N references, each one string or a non-empty sequence of
            strings (several references of the same image).
        meteor: ``"auto"`` runs METEOR when Java is found and the bundled jar
            runs, and otherwise skips it with a logged warning. ``True``
            requires it and raises when it cannot run. ``False`` skips it. A
            :class:`MeteorScorer` from :func:`meteor_scorer` is used as is,
            which saves the ~7 s start of the Java process when scoring many
            sets.

    Returns:
        ``{"BLEU-1": ..., "BLEU-4": ..., "ROUGE-L": ..., "CIDEr": ..., "METEOR": ...}``
        as fractions in [0, 1] (CIDEr-D in [0, 10]). ``"METEOR"`` is absent when
        skipped. Empty inputs have defined scores: an empty prediction scores
        0 against its references; an item whose references are all empty is
        left out of every score (the scorers cannot score it); and when no
        item is left, every metric is NaN. ``"captions scored"`` gives the
        number of items scored.

    Raises:
        ValueError: if the lengths differ or a reference list is empty.
        TypeError: if a caption is not a string.
        RuntimeError: if ``meteor=True`` and METEOR cannot run.

    Example:
        >>> scores = caption_metrics(["chest ct, left effusion"], ["Chest CT with left effusion."], meteor=False)
        >>> round(scores["BLEU-1"], 3)
        0.779
    """
    hypotheses, reference_lists = _validate_captions(predictions, references)
    scored_items = [index for index, refs in enumerate(reference_lists) if any(refs)]
    if len(scored_items) < len(hypotheses):
        LOGGER.warning(
            "%d of %d items have only empty references; they are left out of the caption metrics.",
            len(hypotheses) - len(scored_items),
            len(hypotheses),
        )

    _check_meteor_argument(meteor)
    if not scored_items:
        names = OVERLAP_METRIC_NAMES + (("METEOR",) if meteor is not False else ())
        scores = {name: math.nan for name in names}
        scores["captions scored"] = 0
        return scores

    gts = {index: [ref for ref in reference_lists[index] if ref] for index in scored_items}
    res = {index: [hypotheses[index]] for index in scored_items}
    scores = _overlap_scores(gts, res)
    meteor_value = _meteor_score(gts, res, meteor)
    if meteor_value is not None:
        scores["METEOR"] = meteor_value
    scores["captions scored"] = len(scored_items)
    return scores


def _validate_captions(
    predictions: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    if isinstance(predictions, str) or not isinstance(predictions, Sequence):
        raise TypeError(f"predictions must be a sequence of strings, got {type(predictions).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"references must be a sequence of strings or of lists of strings, got {type(references).__name__}")
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have the same length, got {len(predictions)} and {len(references)}; "
            "pass one reference (or one list of references) per prediction."
        )

    hypotheses = [" ".join(tokenize_caption(prediction)) for prediction in predictions]
    reference_lists = []
    for index, item in enumerate(references):
        refs = [item] if isinstance(item, str) else list(item)
        if not refs:
            raise ValueError(f"references[{index}] is an empty list; give at least one reference string per item.")
        reference_lists.append([" ".join(tokenize_caption(ref)) for ref in refs])
    return hypotheses, reference_lists


def _overlap_scores(gts: dict[int, list[str]], res: dict[int, list[str]]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    scores = {f"BLEU-{n}": float(value) for n, value in enumerate(bleu, start=1)}
    scores["ROUGE-L"] = float(rouge)
    scores["CIDEr"] = float(cider)
    return scores


# ---------------------------------------------------------------------------
# METEOR


class MeteorScorer:
    """A running METEOR 1.5 process (pycocoevalcap's jar, needs Java), reusable across sets.

    Use it through :func:`meteor_scorer`, which stops the process on exit.
    """

    def __init__(self) -> None:
        from pycocoevalcap.meteor.meteor import Meteor

        self._meteor = Meteor()

    def score(self, gts: Mapping[Any, list[str]], res: Mapping[Any, list[str]]) -> float:
        """Return the corpus METEOR of tokenized hypotheses ``res`` against references ``gts``.

        Raises:
            RuntimeError: if the Java process has stopped.
        """
        if self._meteor is None:
            raise RuntimeError("This MeteorScorer is closed; open a new one with meteor_scorer().")
        try:
            value, _ = self._meteor.compute_score(dict(gts), dict(res))
        except (ValueError, BrokenPipeError) as error:
            # The wrapper reads an empty line once the Java process has died.
            raise RuntimeError(f"METEOR failed because the Java process returned no score ({error}).") from error
        return float(value)

    def close(self) -> None:
        """Stop the Java process. Closing twice is harmless."""
        meteor, self._meteor = self._meteor, None
        if meteor is not None:
            with meteor.lock:
                meteor.meteor_p.stdin.close()
                meteor.meteor_p.kill()
                meteor.meteor_p.wait()


def meteor_available() -> bool:
    """Return True when a ``java`` executable is on the PATH (METEOR's only requirement)."""
    return shutil.which("java") is not None


@contextlib.contextmanager
def meteor_scorer() -> Iterator[MeteorScorer]:
    """Start one METEOR process, yield it, and stop it on exit.

    Raises:
        RuntimeError: if Java is missing or the METEOR process cannot start.
    """
    if not meteor_available():
        raise RuntimeError(
            "METEOR needs Java, but no 'java' executable is on the PATH; "
            "install a Java runtime (8 or later) or pass meteor=False."
        )
    try:
        scorer = MeteorScorer()
    except OSError as error:
        raise RuntimeError(f"METEOR failed to start the Java process: {error}") from error
    try:
        yield scorer
    finally:
        scorer.close()


def _check_meteor_argument(meteor: bool | str | MeteorScorer) -> None:
    if meteor is True or meteor is False or meteor == "auto" or isinstance(meteor, MeteorScorer):
        return
    raise ValueError(f"meteor must be True, False, 'auto' or a MeteorScorer, got {meteor!r}")


def _meteor_score(
    gts: dict[int, list[str]], res: dict[int, list[str]], meteor: bool | str | MeteorScorer
) -> float | None:
    if meteor is False:
        return None
    if isinstance(meteor, MeteorScorer):
        return meteor.score(gts, res)
    try:
        with meteor_scorer() as scorer:
            return scorer.score(gts, res)
    except RuntimeError as error:
        if meteor is True:
            raise
        LOGGER.warning("METEOR skipped: %s", error)
        return None


# ---------------------------------------------------------------------------
# Clinical correctness


def parse_caption_labels(
    caption: str,
    vocabulary: Mapping[str, Mapping[Any, Sequence[str]]] | None = None,
    *,
    fields: Sequence[str] | None = None,
    weak_labels: Mapping[str, Sequence[Any]] | None = None,
    absent_labels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read the labels a caption states, one per field, with negated mentions ignored.

    Surface phrases of every column of the vocabulary are matched on whole
    tokens of :func:`tokenize_caption` (punctuation kept), longest phrase
    first and without overlaps. So "pleural effusion" wins over "effusion",
    and the side word inside a location ("right hepatic lobe") is not read
    as a side. The last word of a phrase may carry a plural "s" or "es". A
    phrase may name several columns ("CXR" is a modality and an anatomy).

    A mention of a finding or a side does not count inside a negation scope,
    which starts after a cue such as "no", "without" or "negative for" and
    covers up to ``NEGATION_WINDOW`` tokens, ending early at a clause boundary
    (".", ",", ";", "but", ...). A cue such as "absent" or "ruled out" within
    three tokens after a mention negates it too. Cue words inside a matched
    phrase ("no acute findings") are part of the phrase, not cues.

    The first mention that counts gives a field's label, except that a weak
    label ("normal") yields to any later label of its field.

    Args:
        caption: one caption.
        vocabulary: column -> label -> surface phrases. Defaults to the
            phantom corpus's ``medgap_utils.data.PHANTOM_VOCABULARY``.
        fields: the fields to return; defaults to those of ``CLINICAL_FIELDS``
            in the vocabulary.
        weak_labels: field -> labels that other labels override; defaults to
            ``DEFAULT_WEAK_LABELS``.
        absent_labels: field -> label to return when the caption names no
            label of that field; defaults to ``DEFAULT_ABSENT_LABELS``. Other
            fields return None then.

    Returns:
        Field -> label (as the vocabulary spells it), or None.

    Raises:
        TypeError: if ``caption`` is not a string or ``vocabulary`` not a mapping.
        ValueError: if a requested field is not in the vocabulary.

    Example:
        >>> vocabulary = {"finding": {"effusion": ["pleural effusion"], "nodule": ["nodule"]},
        ...               "side": {"left": ["left"], "right": ["right"]}}
        >>> parse_caption_labels("No left pleural effusion. Right nodules.", vocabulary)
        {'finding': 'nodule', 'side': 'right'}
    """
    vocabulary = _default_vocabulary(vocabulary)
    matcher = CaptionLabelParser(
        vocabulary, fields=fields, weak_labels=weak_labels, absent_labels=absent_labels
    )
    return matcher.parse(caption)


def clinical_correctness(
    predictions: Sequence[str],
    labels: Mapping[str, Sequence[Any]] | Any,
    *,
    vocabulary: Mapping[str, Mapping[Any, Sequence[str]]] | None = None,
    fields: Sequence[str] | None = None,
    weak_labels: Mapping[str, Sequence[Any]] | None = None,
    absent_labels: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Score the labels stated by generated captions against ground-truth labels.

    Each prediction is parsed with :func:`parse_caption_labels`. A field the
    caption does not state (and that has no absent label) counts as the label
    ``UNPARSED_LABEL``, which is always wrong.

    Args:
        predictions: N generated captions.
        labels: ground truth, field -> N labels: a dict of sequences or a
            ``datasets.Dataset`` with those columns. Labels are compared as strings.
        vocabulary: column -> label -> surface phrases; defaults to
            ``medgap_utils.data.PHANTOM_VOCABULARY``.
        fields: fields to score; defaults to the fields of ``CLINICAL_FIELDS``
            present in both ``labels`` and the vocabulary.
        weak_labels, absent_labels: as in :func:`parse_caption_labels`.

    Returns:
        For each field, ``"<field> accuracy"`` is the fraction of captions
        whose parsed label equals the truth, and ``"<field> F1"`` the macro F1
        over the labels that occur in the truth (a label never predicted has
        F1 0). ``"clinical accuracy"`` and ``"clinical F1"`` are their means
        over the fields. All are fractions in [0, 1], NaN when N = 0.

    Raises:
        ValueError: if a label column's length differs from N, a requested
            field is missing from ``labels`` or the vocabulary, or no field
            can be scored.
        TypeError: if a prediction is not a string.

    Example:
        >>> vocabulary = {"modality": {"CT": ["ct"], "MRI": ["mri", "mr"]}}
        >>> scores = clinical_correctness(["axial ct", "brain mr"], {"modality": ["CT", "CT"]}, vocabulary=vocabulary)
        >>> scores["modality accuracy"], round(scores["modality F1"], 3)
        (0.5, 0.667)
    """
    vocabulary = _default_vocabulary(vocabulary)
    if isinstance(predictions, str) or not isinstance(predictions, Sequence):
        raise TypeError(f"predictions must be a sequence of strings, got {type(predictions).__name__}")
    truth = _label_columns(labels, vocabulary, fields, len(predictions))
    matcher = CaptionLabelParser(vocabulary, fields=list(truth), weak_labels=weak_labels, absent_labels=absent_labels)

    parsed = [matcher.parse(prediction) for prediction in predictions]
    scores: dict[str, float] = {}
    for field, true_labels in truth.items():
        predicted = [UNPARSED_LABEL if item[field] is None else str(item[field]) for item in parsed]
        scores[f"{field} accuracy"] = _accuracy(true_labels, predicted)
        scores[f"{field} F1"] = _macro_f1(true_labels, predicted)
    scores["clinical accuracy"] = _mean([scores[f"{field} accuracy"] for field in truth])
    scores["clinical F1"] = _mean([scores[f"{field} F1"] for field in truth])
    return scores


class CaptionLabelParser:
    """The parser of :func:`parse_caption_labels`, built once for many captions.

    Args:
        vocabulary: column -> label -> surface phrases (all columns are
            matched, so that phrases of other columns block overlaps).
        fields, weak_labels, absent_labels: as in :func:`parse_caption_labels`.

    Raises:
        TypeError: if ``vocabulary`` is not a mapping of mappings.
        ValueError: if a requested field is not in the vocabulary.
    """

    def __init__(
        self,
        vocabulary: Mapping[str, Mapping[Any, Sequence[str]]],
        *,
        fields: Sequence[str] | None = None,
        weak_labels: Mapping[str, Sequence[Any]] | None = None,
        absent_labels: Mapping[str, Any] | None = None,
    ) -> None:
        self.fields = _resolve_fields(vocabulary, fields)
        weak_labels = DEFAULT_WEAK_LABELS if weak_labels is None else weak_labels
        self.weak_labels = {field: set(values) for field, values in weak_labels.items()}
        self.absent_labels = dict(DEFAULT_ABSENT_LABELS if absent_labels is None else absent_labels)

        # phrase tokens -> [(field, label)], matched longest first.
        targets: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
        for field, values in vocabulary.items():
            if not isinstance(values, Mapping):
                raise TypeError(f"vocabulary[{field!r}] must map label -> phrases, got {type(values).__name__}")
            for label, surface_forms in values.items():
                for surface in surface_forms:
                    tokens = tuple(tokenize_caption(surface, keep_punctuation=True))
                    if tokens and (field, label) not in targets.setdefault(tokens, []):
                        targets[tokens].append((field, label))
        self.phrases = sorted(targets.items(), key=lambda item: (-len(item[0]), -len(" ".join(item[0]))))
        self.pre_cues = sorted((tuple(cue.split()) for cue in NEGATION_PRE_CUES), key=len, reverse=True)
        self.post_cues = sorted((tuple(cue.split()) for cue in NEGATION_POST_CUES), key=len, reverse=True)

    def parse(self, caption: str) -> dict[str, Any]:
        """Return field -> label for one caption (see :func:`parse_caption_labels`)."""
        tokens = tokenize_caption(caption, keep_punctuation=True)
        mentions = self._mentions(tokens)
        negated = self._negated_positions(tokens, mentions)

        result: dict[str, Any] = {field: None for field in self.fields}
        for start, end, targets in mentions:
            for field, label in targets:
                if field not in result:
                    continue
                weak = label in self.weak_labels.get(field, ())
                if field in NEGATABLE_FIELDS and not weak and (start in negated or self._post_negated(tokens, end)):
                    continue
                current = result[field]
                if current is None or (current in self.weak_labels.get(field, ()) and not weak):
                    result[field] = label
        for field in self.fields:
            if result[field] is None and field in self.absent_labels:
                result[field] = self.absent_labels[field]
        return result

    def _mentions(self, tokens: list[str]) -> list[tuple[int, int, list[tuple[str, Any]]]]:
        matched = [False] * len(tokens)
        mentions = []
        for phrase, targets in self.phrases:
            size = len(phrase)
            for start in range(len(tokens) - size + 1):
                if any(matched[start : start + size]) or not _phrase_at(tokens, start, phrase):
                    continue
                matched[start : start + size] = [True] * size
                mentions.append((start, start + size, targets))
        return sorted(mentions, key=lambda mention: mention[0])

    def _negated_positions(self, tokens: list[str], mentions: list[tuple[int, int, Any]]) -> set[int]:
        inside_phrase = set()
        for start, end, _ in mentions:
            inside_phrase.update(range(start, end))

        negated: set[int] = set()
        position = 0
        while position < len(tokens):
            cue = None if position in inside_phrase else _cue_at(tokens, position, self.pre_cues)
            if cue is None:
                position += 1
                continue
            scope_start = position + cue
            for offset in range(scope_start, min(len(tokens), scope_start + NEGATION_WINDOW)):
                if tokens[offset] in NEGATION_TERMINATORS:
                    break
                negated.add(offset)
            position = scope_start
        return negated

    def _post_negated(self, tokens: list[str], end: int) -> bool:
        for offset in range(end, min(len(tokens), end + 3)):
            if tokens[offset] in NEGATION_TERMINATORS:
                return False
            if _cue_at(tokens, offset, self.post_cues) is not None:
                return True
        return False


def _phrase_at(tokens: list[str], start: int, phrase: tuple[str, ...]) -> bool:
    last = len(phrase) - 1
    if tuple(tokens[start : start + last]) != phrase[:last]:
        return False
    word = tokens[start + last]
    return word == phrase[last] or word in (phrase[last] + "s", phrase[last] + "es")


def _cue_at(tokens: list[str], position: int, cues: list[tuple[str, ...]]) -> int | None:
    for cue in cues:
        if tuple(tokens[position : position + len(cue)]) == cue:
            return len(cue)
    return None


def _default_vocabulary(
    vocabulary: Mapping[str, Mapping[Any, Sequence[str]]] | None,
) -> Mapping[str, Mapping[Any, Sequence[str]]]:
    if vocabulary is not None:
        if not isinstance(vocabulary, Mapping):
            raise TypeError(f"vocabulary must map column -> label -> phrases, got {type(vocabulary).__name__}")
        return vocabulary
    from medgap_utils.data import PHANTOM_VOCABULARY

    return PHANTOM_VOCABULARY


def _resolve_fields(vocabulary: Mapping[str, Any], fields: Sequence[str] | None) -> list[str]:
    if fields is None:
        return [field for field in CLINICAL_FIELDS if field in vocabulary]
    if isinstance(fields, str):
        fields = [fields]
    missing = [field for field in fields if field not in vocabulary]
    if missing:
        raise ValueError(f"fields {missing} are not in the vocabulary, which has {sorted(vocabulary)}.")
    return list(fields)


def _label_columns(
    labels: Mapping[str, Sequence[Any]] | Any,
    vocabulary: Mapping[str, Any],
    fields: Sequence[str] | None,
    count: int,
) -> dict[str, list[str]]:
    column_names = getattr(labels, "column_names", None)
    if column_names is None and not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a dict of label sequences or a datasets.Dataset, got {type(labels).__name__}")
    available = list(column_names if column_names is not None else labels.keys())
    if fields is None:
        fields = [field for field in CLINICAL_FIELDS if field in available and field in vocabulary]
        if not fields:
            raise ValueError(
                f"labels has none of the fields {list(CLINICAL_FIELDS)} that the vocabulary also has "
                f"(labels has {available}, vocabulary has {sorted(vocabulary)}); pass label columns by those names."
            )
    else:
        fields = _resolve_fields(vocabulary, fields)
        missing = [field for field in fields if field not in available]
        if missing:
            raise ValueError(f"labels has no column for fields {missing}; it has {available}.")

    columns = {}
    for field in fields:
        column = [str(value) for value in labels[field]]
        if len(column) != count:
            raise ValueError(
                f"labels[{field!r}] has {len(column)} values but there are {count} predictions; "
                "pass the labels of the same test rows, in order."
            )
        columns[field] = column
    return columns


def _accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    if not truth:
        return math.nan
    return sum(t == p for t, p in zip(truth, predicted)) / len(truth)


def _macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    if not truth:
        return math.nan
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0.0))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
