"""Corpora for medgap: the embedded phantom corpus, real DICOM slices, hub loaders, batching.

Every loader returns the common schema (``image``, ``caption``, ``image_id``,
see :mod:`medgap_utils.data.schema`), so no code downstream depends on where the
data came from.
"""

from .batching import CLIP_MEAN, CLIP_STD, default_num_workers, make_dataloader, make_image_transform
from .captions import PHANTOM_VOCABULARY, caption_mentions, make_caption, parse_caption
from .dicom import DICOM_FEATURES, load_dicom_slices
from .hub import (
    ROCO_FEATURES,
    HubUnavailableError,
    load_image_caption_dataset,
    load_iu_xray,
    load_roco,
    write_roco_parquet,
)
from .corpus import LABEL_COLUMNS, PHANTOM_FEATURES, load_phantom_corpus, phantom_corpus_path
from .images import clean_caption, decode_image, drop_invalid_rows, to_rgb
from .labels import ANATOMIES, FINDINGS, MODALITIES, all_groups, group_label
from .schema import CORPUS_FEATURES, validate_corpus
from .sources import HUB_CORPORA, load_corpus

__all__ = [
    "ANATOMIES", "CLIP_MEAN", "CLIP_STD", "CORPUS_FEATURES", "DICOM_FEATURES", "FINDINGS", "HUB_CORPORA", "HubUnavailableError", "LABEL_COLUMNS", "MODALITIES",
    "PHANTOM_FEATURES", "PHANTOM_VOCABULARY", "ROCO_FEATURES", "all_groups", "caption_mentions", "clean_caption",
    "decode_image", "default_num_workers", "drop_invalid_rows", "group_label", "load_dicom_slices",
    "load_corpus", "load_image_caption_dataset", "load_iu_xray", "load_phantom_corpus", "load_roco",
    "make_caption", "make_dataloader", "make_image_transform", "parse_caption", "phantom_corpus_path",
    "to_rgb", "validate_corpus", "write_roco_parquet",
]
