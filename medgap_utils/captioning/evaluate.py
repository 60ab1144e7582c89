"""Train, decode and score a captioner in one call, cached, for chapters and the benchmark runner."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from medgap_utils.captioning.decoder import DecoderConfig
from medgap_utils.captioning.train import CACHE_VERSION, tensor_digest, text_digest, train_captioner
from medgap_utils.config import cache_dir, config_key
from medgap_utils.io import write_json_atomic
from medgap_utils.metrics._validation import check_matrix
from medgap_utils.metrics.captions import (
    CLINICAL_FIELDS,
    MeteorScorer,
    caption_metrics,
    clinical_correctness,
    meteor_available,
    meteor_scorer,
)

LOGGER = logging.getLogger(__name__)

REGIMES = ("supervised", "text_only")


def evaluate_captioning(
    train_embeddings: torch.Tensor,
    train_captions: Sequence[str],
    test_embeddings: torch.Tensor,
    test_captions: Sequence[str],
    *,
    regime: str = "supervised",
    noise_std: float = 0.0,
    labels: Mapping[str, Sequence[Any]] | Any = None,
    vocabulary: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    config: DecoderConfig | None = None,
    seed: int = 0,
    beam_size: int = 3,
    meteor: bool | str | MeteorScorer = "auto",
    num_examples: int = 5,
    cache: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a captioner on one set of embeddings, caption the test embeddings and score the captions.

    The regime names which embeddings train the decoder, and the caller passes them:

    - ``"supervised"``: ``train_embeddings`` are image embeddings, each paired
      with its caption.
    - ``"text_only"``: ``train_embeddings`` are the text embeddings of
      ``train_captions`` themselves, so the decoder learns to reconstruct a
      caption from its own embedding. Testing it on image embeddings shows what
      the modality gap costs, because image embeddings lie off the inputs it
      was trained on; ``noise_std > 0`` is the CapDec baseline.

    ``test_embeddings`` are usually image embeddings in both regimes (text
    embeddings give the text-only decoder's ceiling).

    Args:
        train_embeddings: (N, D) L2-normalized embeddings, row-aligned with ``train_captions``.
        train_captions: N training captions.
        test_embeddings: (M, D) L2-normalized embeddings to caption.
        test_captions: M reference captions, row-aligned with ``test_embeddings``.
        regime: ``"supervised"`` or ``"text_only"``; recorded with the result.
        noise_std: training noise, see :func:`train_captioner`.
        labels: ground-truth labels of the test rows (a dict of lists or a
            ``datasets.Dataset`` with ``modality``, ``anatomy``, ``finding``,
            ``side`` columns); adds clinical correctness when given.
        vocabulary: phrase vocabulary for clinical correctness; defaults to
            ``medgap_utils.data.PHANTOM_VOCABULARY``.
        config: decoder architecture and schedule; defaults to ``DecoderConfig()``.
        seed: training seed.
        beam_size: 1 decodes greedily, more runs beam search.
        meteor: see :func:`medgap_utils.metrics.captions.caption_metrics`.
        num_examples: test rows shown in ``"examples"``, evenly spaced over
            the test set, so every call on the same test set shows the same rows.
        cache: reuse and store results (and the trained captioner) under
            ``cache_dir("captioning")``, keyed by every input above.
        progress: show progress bars.

    Returns:
        A JSON-ready dict: ``"metrics"`` (BLEU-1..4, ROUGE-L, CIDEr, METEOR
        when run, and the clinical scores when ``labels`` is given; see
        :func:`caption_metrics` and :func:`clinical_correctness`),
        ``"predictions"`` (M captions), ``"examples"`` (dicts with
        ``index``, ``reference``, ``prediction`` and the labels),
        ``"regime"``, ``"noise_std"``, ``"seed"``, ``"beam_size"``,
        ``"train_seconds"``, ``"final_loss"``, ``"vocabulary_size"``,
        ``"train_size"``, ``"test_size"`` and ``"key"`` (the cache key).

    Raises:
        ValueError: if ``regime`` is unknown, an embedding matrix is not a
            finite L2-normalized (rows, D) matrix, the two matrices differ in
            D, lengths disagree, or ``num_examples`` is negative.
        TypeError: on inputs of the wrong type.
    """
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    config = DecoderConfig() if config is None else config
    train_embeddings = check_matrix(train_embeddings, "train_embeddings")
    test_embeddings = check_matrix(test_embeddings, "test_embeddings")
    if train_embeddings.shape[1] != test_embeddings.shape[1]:
        raise ValueError(
            f"train_embeddings and test_embeddings must share one space, got dimensions "
            f"{train_embeddings.shape[1]} and {test_embeddings.shape[1]}."
        )
    train_captions = _check_captions(train_captions, "train_captions", train_embeddings.shape[0])
    test_captions = _check_captions(test_captions, "test_captions", test_embeddings.shape[0])
    label_columns = _label_columns(labels)

    key = config_key(
        {
            "version": CACHE_VERSION,
            "train_embeddings": tensor_digest(train_embeddings),
            "train_captions": text_digest(train_captions),
            "test_embeddings": tensor_digest(test_embeddings),
            "test_captions": text_digest(test_captions),
            "labels": {field: text_digest(column) for field, column in label_columns.items()},
            "vocabulary": json.dumps(vocabulary, sort_keys=True) if vocabulary is not None else "phantom",
            "regime": regime,
            "noise_std": float(noise_std),
            "config": dataclasses.asdict(config),
            "seed": int(seed),
            "beam_size": int(beam_size),
            "meteor": meteor is not False and meteor_available(),
            "num_examples": int(num_examples),
        }
    )
    path = cache_dir("captioning", "results") / f"{key}.json"
    if cache and path.exists():
        LOGGER.info("Loading cached captioning results %s", path)
        return json.loads(path.read_text(encoding="utf-8"))

    captioner = train_captioner(
        train_embeddings, train_captions, config=config, noise_std=noise_std, seed=seed, cache=cache, progress=progress
    )
    predictions = captioner.generate(test_embeddings, beam_size=beam_size, progress=progress)

    metrics = caption_metrics(predictions, test_captions, meteor=meteor)
    if label_columns:
        metrics.update(clinical_correctness(predictions, label_columns, vocabulary=vocabulary))

    result = {
        "key": key,
        "regime": regime,
        "noise_std": float(noise_std),
        "seed": int(seed),
        "beam_size": int(beam_size),
        "metrics": metrics,
        "predictions": predictions,
        "examples": _examples(predictions, test_captions, label_columns, num_examples),
        "train_seconds": captioner.train_seconds,
        "final_loss": captioner.losses[-1] if captioner.losses else math.nan,
        "vocabulary_size": len(captioner.tokenizer),
        "train_size": int(train_embeddings.shape[0]),
        "test_size": int(test_embeddings.shape[0]),
    }
    if cache:
        write_json_atomic(path, result)
    return result


def _check_captions(captions: Sequence[str], name: str, rows: int) -> list[str]:
    if isinstance(captions, str) or not isinstance(captions, Sequence):
        raise TypeError(f"{name} must be a sequence of strings, got {type(captions).__name__}")
    captions = list(captions)
    if len(captions) != rows:
        raise ValueError(f"{name} has {len(captions)} items but its embeddings have {rows} rows; pass one caption per row.")
    for index, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(caption).__name__}")
    return captions


def _label_columns(labels: Mapping[str, Sequence[Any]] | Any) -> dict[str, list[str]]:
    if labels is None:
        return {}
    available = list(getattr(labels, "column_names", None) or labels.keys())
    return {field: [str(value) for value in labels[field]] for field in CLINICAL_FIELDS if field in available}


def _examples(
    predictions: Sequence[str], references: Sequence[str], labels: Mapping[str, Sequence[str]], count: int
) -> list[dict[str, Any]]:
    total = len(predictions)
    count = min(count, total)
    if count == 0:
        return []
    # Evenly spaced and seed-independent, so tables of different runs line up.
    indices = sorted({round(position * (total - 1) / max(1, count - 1)) for position in range(count)})
    examples = []
    for index in indices:
        example = {"index": index, "reference": references[index], "prediction": predictions[index]}
        example.update({field: column[index] for field, column in labels.items()})
        examples.append(example)
    return examples


@contextlib.contextmanager
def shared_meteor(meteor: bool | str | MeteorScorer) -> Iterator[bool | str | MeteorScorer]:
    """Yield one METEOR process for many :func:`evaluate_captioning` calls, or ``meteor`` unchanged.

    With ``"auto"`` or True (and Java present) it starts one process and
    yields it, which saves the ~7 s start of METEOR in every call. Without a
    working Java, ``"auto"`` is yielded unchanged, so each call logs that
    METEOR was skipped.
    """
    if meteor is False or isinstance(meteor, MeteorScorer):
        yield meteor
        return
    try:
        context = meteor_scorer()
        scorer = context.__enter__()
    except RuntimeError:
        if meteor is True:
            raise
        yield meteor
        return
    try:
        yield scorer
    finally:
        context.__exit__(None, None, None)
