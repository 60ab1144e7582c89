"""Clustering, probes, zero-shot classification and modality separability."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score, v_measure_score

from medgap_utils import metrics


from embedding_cases import labelled_pairs, normalized


def test_clustering_scores_match_scikit_learn():
    images, texts, labels = labelled_pairs(spread=0.6, seed=1)
    stacked = np.concatenate([images, texts]).astype(np.float32)
    clusters = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(stacked)
    stacked_labels = np.concatenate([labels, labels])

    scores = metrics.clustering_scores(images, texts, labels)

    assert scores["v_measure"] == pytest.approx(v_measure_score(stacked_labels, clusters))
    assert scores["ari"] == pytest.approx(adjusted_rand_score(stacked_labels, clusters))
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(stacked_labels, clusters))
    assert scores["modality_split_rate"] == pytest.approx(np.mean(clusters[:60] != clusters[60:]))


def test_clustering_of_separated_classes_is_perfect():
    images, texts, labels = labelled_pairs(spread=0.05)

    scores = metrics.clustering_scores(images, texts, labels)

    assert scores["v_measure"] == pytest.approx(1.0)
    assert scores["ari"] == pytest.approx(1.0)
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["modality_split_rate"] == 0.0
    assert scores["modality_homogeneity"] == pytest.approx(0.0, abs=1e-9)


def test_clustering_follows_modality_under_large_gap():
    # Texts sit far along the last axis, so two clusters split image from text.
    images, texts, labels = labelled_pairs(classes=2, spread=0.05, gap=5.0)

    scores = metrics.clustering_scores(images, texts, labels)

    assert scores["modality_split_rate"] == 1.0
    assert scores["modality_homogeneity"] == pytest.approx(1.0)
    assert scores["v_measure"] == pytest.approx(0.0, abs=1e-9)


def test_clustering_accepts_string_labels():
    images, texts, labels = labelled_pairs(spread=0.05)
    names = np.array(["lung", "liver", "brain"])[labels].tolist()

    scores = metrics.clustering_scores(images, texts, names, n_init=1)

    assert scores["v_measure"] == pytest.approx(1.0)


def test_knn_of_separated_classes_is_perfect():
    images, texts, labels = labelled_pairs(spread=0.05)

    for modality in ("joint", "image", "text"):
        assert metrics.knn_accuracy(images, texts, labels, modality=modality) == 1.0, modality


def test_knn_never_trains_on_the_partner_row():
    # Each caption equals its image and labels are random: a kNN that could
    # see a test row's partner would score 1.0 with k=1.
    rng = np.random.default_rng(2)
    images = normalized(rng.normal(size=(80, 8)))
    labels = rng.integers(0, 2, size=80)

    accuracy = metrics.knn_accuracy(images, images, labels, k=1)

    assert accuracy < 0.75


def test_linear_probe_of_separated_classes_is_perfect():
    images, texts, labels = labelled_pairs(spread=0.05)

    assert metrics.linear_probe_accuracy(images, texts, labels) == 1.0


def test_linear_probe_of_random_labels_is_near_chance():
    rng = np.random.default_rng(3)
    images = normalized(rng.normal(size=(100, 4)))
    texts = normalized(rng.normal(size=(100, 4)))
    labels = rng.integers(0, 2, size=100)

    assert metrics.linear_probe_accuracy(images, texts, labels) < 0.7


def test_probe_accuracy_is_reproducible():
    images, texts, labels = labelled_pairs(spread=0.8, seed=4)

    first = metrics.linear_probe_accuracy(images, texts, labels, seed=7)
    second = metrics.linear_probe_accuracy(images, texts, labels, seed=7)

    assert first == second


def test_separability_of_large_gap_is_one():
    images, texts, _ = labelled_pairs(spread=0.1, gap=2.0)

    assert metrics.modality_separability(images, texts) == 1.0


def test_separability_of_identical_modalities_is_one_half():
    # Image and text rows coincide and share a fold, so every prediction is
    # right for exactly one of the two.
    images, _, _ = labelled_pairs(spread=0.3)

    assert metrics.modality_separability(images, images) == 0.5


def test_zero_shot_of_hand_computed_case():
    # Prompts e1, e2, e3. Predictions (0, 1, 1, 2, 0) against labels
    # (0, 1, 2, 2, 1): accuracy 3/5; F1 per class: 2/3, 1/2, 2/3.
    prompts = np.eye(3)
    images = normalized(
        np.array([[1.0, 0.1, 0.0], [0.1, 1.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.2, 1.0], [1.0, 0.5, 0.0]])
    )
    labels = [0, 1, 2, 2, 1]

    result = metrics.zero_shot_classification(images, prompts, labels)

    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert result["macro_f1"] == pytest.approx(f1_score(labels, [0, 1, 1, 2, 0], average="macro"))


def test_zero_shot_ties_go_to_lowest_class():
    images = normalized(np.array([[1.0, 1.0]]))

    result = metrics.zero_shot_classification(images, np.eye(2), [0])

    assert result["accuracy"] == 1.0


def test_zero_shot_rejects_labels_outside_classes():
    with pytest.raises(ValueError, match="class indices in \\[0, 2\\).*from 0 to 2"):
        metrics.zero_shot_classification(np.eye(3), np.eye(3)[:2], [0, 1, 2])


def test_zero_shot_rejects_non_integer_labels():
    with pytest.raises(TypeError, match="integer class indices"):
        metrics.zero_shot_classification(np.eye(2), np.eye(2), ["a", "b"])
