"""The common corpus schema and its validation.

Every corpus in medgap, whether the embedded phantoms, the real DICOM slices
or a hub dataset, is a ``datasets.Dataset`` (or a ``DatasetDict`` of them)
with at least these columns:

- ``image``: a ``datasets.Image`` (decoded to ``PIL.Image.Image``),
- ``caption``: the paired text, a non-empty string,
- ``image_id``: a string that is unique within the dataset.

Further columns are optional labels (``modality``, ``anatomy``, ``finding``,
``group`` ...) that enable group-wise metrics. Nothing downstream depends on
where a corpus came from.
"""

from __future__ import annotations

import collections
import logging

import datasets

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image", "caption", "image_id")

#: The features every corpus shares. Label columns come on top of these.
CORPUS_FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "caption": datasets.Value("string"),
        "image_id": datasets.Value("string"),
    }
)

#: Captions longer than this many words are kept but will be truncated by
#: a tokenizer whose context is shorter (open_clip's default context is 77 tokens).
LONG_CAPTION_WORDS = 60


def _check_split(dataset: datasets.Dataset, name: str) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{name} is missing the column(s) {missing}; it has {dataset.column_names}. "
            "Rename the columns to image/caption/image_id (Dataset.rename_column), or load it "
            "with medgap_utils.data.load_image_caption_dataset(..., image_column=..., caption_column=...)."
        )

    expected_types = {
        "image": datasets.Image,
        "caption": datasets.Value,
        "image_id": datasets.Value,
    }
    for column, feature_type in expected_types.items():
        feature = dataset.features[column]
        if not isinstance(feature, feature_type) or (
            feature_type is datasets.Value and feature.dtype not in ("string", "large_string")
        ):
            raise ValueError(
                f"{name}: column {column!r} has feature {feature!r}, expected {CORPUS_FEATURES[column]!r}. "
                f"Cast it with dataset.cast_column({column!r}, medgap_utils.data.CORPUS_FEATURES[{column!r}])."
            )

    if len(dataset) == 0:
        raise ValueError(f"{name} has no rows; a corpus needs at least one image-caption pair.")

    captions = dataset["caption"]
    empty = [index for index, caption in enumerate(captions) if caption is None or not caption.strip()]
    if empty:
        ids = dataset.select(empty[:5])["image_id"]
        raise ValueError(
            f"{name} has {len(empty)} empty or whitespace-only caption(s), e.g. at rows {empty[:5]} "
            f"(image_id {ids}). Drop them with medgap_utils.data.drop_invalid_rows(dataset)."
        )

    long_captions = sum(len(caption.split()) > LONG_CAPTION_WORDS for caption in captions)
    if long_captions:
        logger.warning(
            "%s has %d caption(s) longer than %d words; the tokenizer truncates them to its context length.",
            name, long_captions, LONG_CAPTION_WORDS,
        )

    image_ids = dataset["image_id"]
    counts = collections.Counter(image_ids)
    duplicates = sorted(image_id for image_id, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(
            f"{name} has {len(duplicates)} duplicate image_id value(s), e.g. {duplicates[:5]}. "
            "Each row needs its own id: drop repeated rows with medgap_utils.data.drop_invalid_rows(dataset), "
            "or make ids unique (for example by appending the row index)."
        )


def validate_corpus(dataset: datasets.Dataset | datasets.DatasetDict) -> None:
    """Check that ``dataset`` follows the common corpus schema.

    Checks, per split: the columns ``image``/``caption``/``image_id`` exist
    with the feature types of :data:`CORPUS_FEATURES`, there is at least one
    row, no caption is empty or whitespace-only, and no ``image_id`` repeats.
    Captions longer than :data:`LONG_CAPTION_WORDS` words are allowed and
    logged, because the tokenizer truncates them. Image bytes are not decoded
    here (use :func:`medgap_utils.data.drop_invalid_rows` for that).

    Raises:
        TypeError: if ``dataset`` is not a ``Dataset`` or ``DatasetDict``.
        ValueError: naming the split, the offending column or values, and the fix.
    """
    if isinstance(dataset, datasets.DatasetDict):
        if not dataset:
            raise ValueError("The DatasetDict has no splits; a corpus needs at least one split.")
        for split, part in dataset.items():
            _check_split(part, f"split {split!r}")
        return
    if isinstance(dataset, datasets.Dataset):
        _check_split(dataset, "the dataset")
        return
    raise TypeError(
        f"dataset must be a datasets.Dataset or DatasetDict, got {type(dataset).__name__}. "
        "Convert a streaming IterableDataset with datasets.Dataset.from_generator or take() first."
    )
