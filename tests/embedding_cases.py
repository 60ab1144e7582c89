"""Synthetic labelled image-text pairs shared by the metric tests."""

from __future__ import annotations

import numpy as np


def normalized(values):
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def labelled_pairs(rows=60, classes=3, dimension=8, spread=0.1, gap=0.0, seed=0):
    """Return pairs around one direction per class, texts shifted by ``gap`` along the last axis."""
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % classes
    centers = np.eye(dimension)[:classes]
    images = normalized(centers[labels] + spread * rng.normal(size=(rows, dimension)))
    texts = centers[labels] + spread * rng.normal(size=(rows, dimension))
    texts[:, -1] += gap
    return images, normalized(texts), labels
