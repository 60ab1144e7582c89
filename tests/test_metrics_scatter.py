"""Within-class scatter of stacked embeddings and its exact split into parts."""

import numpy as np
import pytest

from medgap_utils import metrics


import functools

import embedding_cases

# Wider spread and more rows than the grouping tests, so class scatter is visible.
labelled_pairs = functools.partial(embedding_cases.labelled_pairs, rows=90, spread=0.3)


def brute_force_within(images, texts, labels):
    """Mean squared distance of every stacked row to its class centroid, one class at a time."""
    stacked = np.concatenate([images, texts]).astype(np.float64)
    stacked_labels = np.concatenate([labels, labels])
    total = 0.0
    for label in np.unique(labels):
        members = stacked[stacked_labels == label]
        total += ((members - members.mean(axis=0)) ** 2).sum()
    return total / len(stacked)


def test_scatter_within_matches_brute_force():
    images, texts, labels = labelled_pairs(gap=0.5)
    scores = metrics.within_class_scatter(images, texts, labels)
    assert scores["within"] == pytest.approx(brute_force_within(images, texts, labels))


def test_scatter_total_matches_variance():
    images, texts, labels = labelled_pairs(gap=0.5)
    stacked = np.concatenate([images, texts]).astype(np.float64)
    scores = metrics.within_class_scatter(images, texts, labels)
    assert scores["total"] == pytest.approx(stacked.var(axis=0).sum())


def test_scatter_parts_add_up():
    images, texts, labels = labelled_pairs(gap=0.8, seed=3)
    scores = metrics.within_class_scatter(images, texts, labels)
    assert scores["total"] == pytest.approx(scores["within"] + scores["between"])
    assert scores["within"] == pytest.approx(scores["within_modality"] + scores["class_gap"])
    assert scores["class_gap"] == pytest.approx(scores["global_gap"] + scores["gap_spread"])
    assert scores["gap_fraction"] == pytest.approx(scores["class_gap"] / scores["within"])
    assert scores["within_fraction"] == pytest.approx(scores["within"] / scores["total"])


def test_scatter_global_gap_is_quarter_squared_gap():
    images, texts, labels = labelled_pairs(gap=0.8)
    scores = metrics.within_class_scatter(images, texts, labels)
    assert scores["global_gap"] == pytest.approx(metrics.modality_gap(images, texts) ** 2 / 4, rel=1e-5)


def test_scatter_constant_shift_adds_its_square():
    images, texts, labels = labelled_pairs(gap=0.0)
    shift = np.zeros(images.shape[1])
    shift[-1] = 0.6
    moved = texts + shift
    # Shifted rows are no longer unit vectors, so compare through the formula on raw rows.
    stacked_before = brute_force_within(images, texts, labels)
    stacked_after = brute_force_within(images, moved, labels)
    class_gaps = [images[labels == c].mean(0) - texts[labels == c].mean(0) for c in np.unique(labels)]
    expected_increase = np.mean([((gap - shift) ** 2).sum() - (gap ** 2).sum() for gap in class_gaps]) / 4
    assert stacked_after - stacked_before == pytest.approx(expected_increase)


def test_scatter_gap_grows_with_offset():
    closed = metrics.within_class_scatter(*labelled_pairs(gap=0.0))
    opened = metrics.within_class_scatter(*labelled_pairs(gap=2.0))
    assert closed["gap_fraction"] < 0.05
    assert opened["gap_fraction"] > 0.4


def test_scatter_centering_removes_global_gap():
    images, texts, labels = labelled_pairs(gap=1.0)
    centered = metrics.center_modalities(images, texts)
    before = metrics.within_class_scatter(images, texts, labels)
    after = metrics.within_class_scatter(*centered, labels)
    # Re-normalization after centering leaves a small residual gap.
    assert after["global_gap"] < 0.01 * before["global_gap"]
    assert after["within_fraction"] < before["within_fraction"]


def test_scatter_single_class_has_no_between():
    images, texts, _ = labelled_pairs(classes=1)
    scores = metrics.within_class_scatter(images, texts, ["one"] * len(images))
    assert scores["between"] == pytest.approx(0.0, abs=1e-12)
    assert scores["gap_spread"] == pytest.approx(0.0, abs=1e-12)


def test_scatter_rejects_wrong_label_count():
    images, texts, labels = labelled_pairs()
    with pytest.raises(ValueError, match="one label per row"):
        metrics.within_class_scatter(images, texts, labels[:-1])


def test_scatter_rejects_unnormalized_rows():
    images, texts, labels = labelled_pairs()
    with pytest.raises(ValueError, match="L2-normalized"):
        metrics.within_class_scatter(images * 2, texts, labels)
