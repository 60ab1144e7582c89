"""Frozen tower features, computed once per backbone and cached on disk.

Heads-only training never runs the towers: it reads the image and text tower
features of every split from this cache, keyed by the data config, the tower
preset and the backbone run, and trains the heads on them in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from medgap_utils.config import ExperimentConfig, cache_dir, config_key
from medgap_utils.io import atomic_path

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def features_key(config: ExperimentConfig) -> str:
    """Return the cache key of the tower features a heads-only config trains on."""
    backbone = config_key(config.backbone) if config.backbone is not None else None
    return config_key({"kind": "tower-features", "data": config.data, "preset": config.model.preset,
                       "backbone": backbone})


def features_path(config: ExperimentConfig) -> Path:
    """Return the file that contains (or will contain) the cached tower features of ``config``."""
    return cache_dir("features", create=False) / features_key(config) / "features.pt"


def load_or_compute_features(config: ExperimentConfig, model, corpus, *, batch_size: int = 256,
                             progress: bool = True) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Return ``{split: (image_features, text_features)}``, from the cache or computed with ``model``'s towers.

    Args:
        config: a heads-only experiment config (its data and backbone key the cache).
        model: a :class:`~medgap_utils.models.DualEncoder` whose towers are the backbone.
        corpus: the ``DatasetDict`` with the splits to encode.

    Returns:
        float32 CPU tensors (N_split, feature_dim), rows in corpus order.
    """
    from medgap_utils.models import encode_features

    path = features_path(config)
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            return {split: (value["image"], value["text"]) for split, value in stored.items()}
        except Exception as error:  # a damaged cache file is recomputed, not fatal
            logger.warning("recomputing tower features: cannot read %s (%s)", path, error)

    features = {}
    for split in SPLITS:
        if split in corpus:
            features[split] = encode_features(model, corpus[split], batch_size=batch_size,
                                              num_workers=config.train.num_workers, progress=progress,
                                              description=f"tower features ({split})")
    with atomic_path(path) as temporary:
        torch.save({split: {"image": image, "text": text} for split, (image, text) in features.items()}, temporary)
    logger.info("cached tower features at %s", path)
    return features
