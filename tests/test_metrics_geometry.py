"""Gap geometry against hand-computed cases, identities and brute-force references."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from medgap_utils import metrics
from medgap_utils.metrics import geometry


def unit_rows(rows, dimension, seed=0, offset=0.0):
    values = np.random.default_rng(seed).normal(size=(rows, dimension)) + offset
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def gapped_pairs(rows=40, dimension=6, seed=0):
    """Pairs whose image and text clouds sit in different cones."""
    images = unit_rows(rows, dimension, seed=seed, offset=1.0)
    texts = unit_rows(rows, dimension, seed=seed + 1, offset=-0.5)
    return images, texts


# Tiny case: x = (e1, e1), y = (e2, -e1).
#   mean(x) = (1, 0), mean(y) = (-0.5, 0.5), gap = |(1.5, -0.5)| = sqrt(2.5)
#   pair cosines 0 and -1: mean -0.5, so arccos -> 120 degrees;
#   per-pair angles 90 and 180 degrees, mean 135 degrees.
TINY_IMAGES = np.array([[1.0, 0.0], [1.0, 0.0]])
TINY_TEXTS = np.array([[0.0, 1.0], [-1.0, 0.0]])


def test_gap_of_tiny_case():
    assert metrics.modality_gap(TINY_IMAGES, TINY_TEXTS) == pytest.approx(math.sqrt(2.5))


def test_true_pair_cosine_of_tiny_case():
    assert metrics.true_pair_cosine(TINY_IMAGES, TINY_TEXTS) == pytest.approx(-0.5)


def test_true_pair_angle_of_tiny_case():
    assert metrics.true_pair_angle(TINY_IMAGES, TINY_TEXTS) == pytest.approx(120.0)
    assert metrics.true_pair_angle(TINY_IMAGES, TINY_TEXTS, method="mean_angle") == pytest.approx(135.0)


def test_identical_pairs_have_zero_gap_and_angle():
    images = unit_rows(10, 4)

    assert metrics.modality_gap(images, images) == pytest.approx(0.0, abs=1e-7)
    assert metrics.true_pair_angle(images, images) == pytest.approx(0.0, abs=0.1)
    assert metrics.true_pair_angle(images, images, method="mean_angle") == pytest.approx(0.0, abs=0.1)


def test_gap_squared_identity():
    images, texts = gapped_pairs()
    image_mean, text_mean = images.mean(axis=0), texts.mean(axis=0)
    expected = image_mean @ image_mean + text_mean @ text_mean - 2 * image_mean @ text_mean

    assert metrics.modality_gap(images, texts) ** 2 == pytest.approx(expected, rel=1e-5)


def test_alignment_equals_two_minus_twice_cosine():
    images, texts = gapped_pairs()

    assert metrics.alignment(images, texts) == pytest.approx(2 - 2 * metrics.true_pair_cosine(images, texts), rel=1e-5)


def test_alignment_with_alpha_one_is_mean_distance():
    images, texts = gapped_pairs()
    expected = np.linalg.norm(images - texts, axis=1).mean()

    assert metrics.alignment(images, texts, alpha=1.0) == pytest.approx(expected, rel=1e-5)


def test_intra_modality_cosine_matches_off_diagonal_mean():
    images, _ = gapped_pairs(rows=25)
    gram = images @ images.T
    expected = gram[~np.eye(25, dtype=bool)].mean()

    assert metrics.intra_modality_cosine(images) == pytest.approx(expected, abs=1e-6)


def test_cone_cosine_of_antipodal_pair():
    assert metrics.intra_modality_cosine(np.array([[0.0, 1.0], [0.0, -1.0]])) == pytest.approx(-1.0)


def brute_force_uniformity(embeddings, t=2.0):
    rows = len(embeddings)
    total = 0.0
    for i in range(rows):
        for j in range(rows):
            if i != j:
                total += math.exp(-t * float(np.sum((embeddings[i] - embeddings[j]) ** 2)))
    return math.log(total / (rows * (rows - 1)))


@pytest.mark.parametrize("t", [0.5, 2.0, 10.0])
def test_uniformity_matches_double_loop(t):
    embeddings = unit_rows(15, 5, offset=0.3)

    assert metrics.uniformity(embeddings, t=t) == pytest.approx(brute_force_uniformity(embeddings, t), abs=1e-5)


def test_uniformity_blocks_match_one_block(monkeypatch):
    embeddings = unit_rows(30, 5)
    whole = metrics.uniformity(embeddings)

    monkeypatch.setattr(geometry, "_UNIFORMITY_BLOCK_ELEMENTS", 70)

    assert metrics.uniformity(embeddings) == pytest.approx(whole, abs=1e-6)


def test_uniformity_of_coinciding_rows_is_zero():
    embeddings = np.tile([[0.6, 0.8]], (5, 1))

    assert metrics.uniformity(embeddings) == pytest.approx(0.0, abs=1e-6)


def test_uniformity_of_large_t_does_not_underflow():
    # exp(-400 * 2) underflows float64, so only a log-sum-exp stays finite.
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    expected = math.log((4 * math.exp(-800.0 + 800.0) + 2 * math.exp(-1600.0 + 800.0)) / 6) - 800.0

    assert metrics.uniformity(embeddings, t=400.0) == pytest.approx(expected, rel=1e-6)


def test_centroid_uniformity_uses_normalized_midpoints():
    images, texts = gapped_pairs(rows=12)
    midpoints = (images + texts) / 2
    centroids = midpoints / np.linalg.norm(midpoints, axis=1, keepdims=True)

    assert metrics.centroid_uniformity(images, texts) == pytest.approx(brute_force_uniformity(centroids), abs=1e-5)


def reference_w2_uniformity(images, texts):
    stacked = np.concatenate([images, texts]).astype(np.float64)
    mean = stacked.mean(axis=0)
    covariance = np.cov(stacked.T, bias=True)
    root = np.real(scipy.linalg.sqrtm(covariance))
    dimension = stacked.shape[1]
    return -math.sqrt(mean @ mean + 1 + np.trace(covariance) - 2 / math.sqrt(dimension) * np.trace(root))


def test_w2_uniformity_matches_scipy_sqrtm():
    images, texts = gapped_pairs(rows=50, dimension=5)

    assert metrics.w2_uniformity(images, texts) == pytest.approx(reference_w2_uniformity(images, texts), abs=1e-5)


def test_w2_uniformity_of_axis_cross_is_zero():
    # The rows +-e_k have mean 0 and covariance I/D: the Gaussian fit is N(0, I/D).
    dimension = 4

    assert metrics.w2_uniformity(np.eye(dimension), -np.eye(dimension)) == pytest.approx(0.0, abs=1e-6)


def test_w2_uniformity_of_single_point():
    embeddings = np.tile([[0.0, 0.6, 0.8]], (4, 1))

    assert metrics.w2_uniformity(embeddings, embeddings) == pytest.approx(-math.sqrt(2), abs=1e-6)


def reference_bures(images, texts):
    image_covariance = np.cov(images.T, bias=True)
    text_covariance = np.cov(texts.T, bias=True)
    image_root = np.real(scipy.linalg.sqrtm(image_covariance))
    cross = np.real(scipy.linalg.sqrtm(image_root @ text_covariance @ image_root))
    return math.sqrt(np.trace(image_covariance) + np.trace(text_covariance) - 2 * np.trace(cross))


def test_gap_decomposition_matches_references():
    images, texts = gapped_pairs(rows=60, dimension=5)

    parts = metrics.gap_decomposition(images, texts)

    assert parts["centroid"] == pytest.approx(metrics.modality_gap(images, texts), abs=1e-9)
    assert parts["distribution"] == pytest.approx(reference_bures(images, texts), abs=1e-5)
    assert parts["total"] ** 2 == pytest.approx(parts["centroid"] ** 2 + parts["distribution"] ** 2)
    assert parts["centroid_fraction"] == pytest.approx(parts["centroid"] ** 2 / parts["total"] ** 2)


def test_gap_decomposition_of_mirrored_cloud_is_all_centroid():
    # y = -x has the covariance of x, so only the centroids differ.
    images = unit_rows(30, 4, offset=1.0)

    parts = metrics.gap_decomposition(images, -images)

    assert parts["distribution"] == pytest.approx(0.0, abs=1e-3)
    assert parts["centroid"] == pytest.approx(2 * np.linalg.norm(images.mean(axis=0)), rel=1e-5)


def test_gap_summary_matches_individual_metrics():
    images, texts = gapped_pairs()

    summary = metrics.gap_summary(images, texts)

    assert summary["modality_gap"] == pytest.approx(metrics.modality_gap(images, texts))
    assert summary["true_pair_cosine"] == pytest.approx(metrics.true_pair_cosine(images, texts))
    assert summary["true_pair_angle"] == pytest.approx(metrics.true_pair_angle(images, texts))
    assert summary["true_pair_angle_mean"] == pytest.approx(
        metrics.true_pair_angle(images, texts, method="mean_angle")
    )
    assert summary["image_cone_cosine"] == pytest.approx(metrics.intra_modality_cosine(images))
    assert summary["text_cone_cosine"] == pytest.approx(metrics.intra_modality_cosine(texts))
    assert summary["alignment"] == pytest.approx(metrics.alignment(images, texts))
    assert summary["image_uniformity"] == pytest.approx(metrics.uniformity(images))
    assert summary["text_uniformity"] == pytest.approx(metrics.uniformity(texts))
    assert summary["uniformity"] == pytest.approx(metrics.uniformity(np.concatenate([images, texts])))
    assert summary["centroid_uniformity"] == pytest.approx(metrics.centroid_uniformity(images, texts))
    assert summary["w2_uniformity"] == pytest.approx(metrics.w2_uniformity(images, texts))


def test_gap_summary_values_are_floats():
    images, texts = gapped_pairs()

    summary = metrics.gap_summary(torch.from_numpy(images), torch.from_numpy(texts))

    assert all(type(value) is float for value in summary.values())
