"""Post-hoc closing: mean centering and shifting along the gap vector."""

import numpy as np
import pytest
import torch

from medgap_utils import metrics


def unit_rows(rows, dimension, seed=0, offset=0.0):
    values = np.random.default_rng(seed).normal(size=(rows, dimension)) + offset
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def gapped_pairs(rows=50, dimension=6):
    return unit_rows(rows, dimension, seed=0, offset=1.0), unit_rows(rows, dimension, seed=1, offset=-0.5)


def centroid_distance(images, texts):
    return float(np.linalg.norm(images.numpy().mean(axis=0) - texts.numpy().mean(axis=0)))


def test_centering_without_renormalization_gives_zero_gap():
    images, texts = gapped_pairs()

    centered_images, centered_texts = metrics.center_modalities(images, texts, renormalize=False)

    assert centroid_distance(centered_images, centered_texts) == pytest.approx(0.0, abs=1e-6)


def test_centering_with_renormalization_shrinks_gap():
    images, texts = gapped_pairs()

    centered_images, centered_texts = metrics.center_modalities(images, texts)

    assert torch.allclose(centered_images.norm(dim=1), torch.ones(50), atol=1e-5)
    assert metrics.modality_gap(centered_images, centered_texts) < 0.5 * metrics.modality_gap(images, texts)


def test_centering_uses_given_means():
    images, texts = gapped_pairs()
    image_mean, text_mean = images[:25].mean(axis=0), texts[:25].mean(axis=0)

    centered_images, centered_texts = metrics.center_modalities(
        images, texts, image_mean=image_mean, text_mean=text_mean, renormalize=False
    )

    assert np.allclose(centered_images.numpy(), images - image_mean, atol=1e-6)
    assert np.allclose(centered_texts.numpy(), texts - text_mean, atol=1e-6)


def test_centering_rejects_mean_of_wrong_shape():
    images, texts = gapped_pairs()

    with pytest.raises(ValueError, match="image_mean must have shape \\(6,\\), got \\(5,\\)"):
        metrics.center_modalities(images, texts, image_mean=np.zeros(5))


def test_shift_by_zero_changes_nothing():
    images, texts = gapped_pairs()

    shifted_images, shifted_texts = metrics.shift_along_gap(images, texts, 0.0)

    assert np.allclose(shifted_images.numpy(), images, atol=1e-6)
    assert np.allclose(shifted_texts.numpy(), texts, atol=1e-6)


@pytest.mark.parametrize("lam", [0.25, 0.5, 1.0])
def test_shift_scales_centroid_distance(lam):
    images, texts = gapped_pairs()
    gap = metrics.modality_gap(images, texts)

    shifted_images, shifted_texts = metrics.shift_along_gap(images, texts, lam, renormalize=False)

    assert centroid_distance(shifted_images, shifted_texts) == pytest.approx((1 - lam) * gap, abs=1e-6)


def test_shift_moves_modalities_symmetrically():
    images, texts = gapped_pairs()
    midpoint = (images.mean(axis=0) + texts.mean(axis=0)) / 2

    shifted_images, shifted_texts = metrics.shift_along_gap(images, texts, 1.0, renormalize=False)

    assert np.allclose(shifted_images.numpy().mean(axis=0), midpoint, atol=1e-6)
    assert np.allclose(shifted_texts.numpy().mean(axis=0), midpoint, atol=1e-6)


def test_shift_gap_decreases_with_lam():
    images, texts = gapped_pairs()

    gaps = [metrics.modality_gap(*metrics.shift_along_gap(images, texts, lam)) for lam in (0.0, 0.3, 0.6, 0.9)]

    assert gaps == sorted(gaps, reverse=True)


def test_shift_rejects_zero_rows():
    # delta = (2, 0), so every image moves by -(1, 0) and lands on zero.
    images = np.array([[1.0, 0.0], [1.0, 0.0]])
    texts = np.array([[-1.0, 0.0], [-1.0, 0.0]])

    with pytest.raises(ValueError, match="rows of image_embeddings are zero"):
        metrics.shift_along_gap(images, texts, 1.0)
