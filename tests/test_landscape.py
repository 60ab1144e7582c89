"""The embedding-shift experiment: shifting along the gap and the loss at each shift."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from medgap_utils import metrics
from medgap_utils.landscape import TABLE_COLUMNS, loss_along_gap, loss_minima, pair_margins, shift_modalities


def unit_rows(rows, dimension, seed, offset):
    values = np.random.default_rng(seed).normal(size=(rows, dimension)) + offset
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def gapped_pairs(rows=40, dimension=8):
    """Pairs that share a per-pair direction, displaced by a constant offset per modality."""
    shared = np.random.default_rng(0).normal(size=(rows, dimension))
    offset = np.zeros(dimension)
    offset[0] = 2.0
    images, texts = shared + offset, shared - offset
    return (images / np.linalg.norm(images, axis=1, keepdims=True),
            texts / np.linalg.norm(texts, axis=1, keepdims=True))


def brute_force_clip_loss(images, texts, temperature):
    """Symmetric InfoNCE written out with a loop over rows."""
    logits = images @ texts.T / temperature
    total = 0.0
    for i in range(len(images)):
        total += -logits[i, i] + math.log(np.exp(logits[i]).sum())
        total += -logits[i, i] + math.log(np.exp(logits[:, i]).sum())
    return total / (2 * len(images))


@pytest.mark.parametrize("shift", [0.0, 0.3, 0.8])
def test_shift_matches_posthoc_shift_in_unit_interval(shift):
    images, texts = gapped_pairs()

    ours = shift_modalities(images, texts, shift)
    reference = metrics.shift_along_gap(images, texts, shift)

    assert torch.allclose(ours[0], reference[0], atol=1e-6)
    assert torch.allclose(ours[1], reference[1], atol=1e-6)


def test_negative_shift_widens_gap():
    images, texts = gapped_pairs()

    widened = metrics.modality_gap(*shift_modalities(images, texts, -0.5))

    assert widened > metrics.modality_gap(images, texts)


def test_shift_returns_unit_rows():
    images, texts = gapped_pairs()

    shifted_images, shifted_texts = shift_modalities(images, texts, 1.4)

    assert torch.allclose(shifted_images.norm(dim=1), torch.ones(len(images)), atol=1e-5)
    assert torch.allclose(shifted_texts.norm(dim=1), torch.ones(len(texts)), atol=1e-5)


def test_shift_rejects_non_finite_shift():
    images, texts = gapped_pairs()

    with pytest.raises(ValueError, match="shift must be a finite number"):
        shift_modalities(images, texts, float("nan"))


def test_shift_rejects_zero_rows():
    images = np.array([[1.0, 0.0], [1.0, 0.0]])
    texts = np.array([[-1.0, 0.0], [-1.0, 0.0]])

    with pytest.raises(ValueError, match="moves a row onto zero"):
        shift_modalities(images, texts, 1.0)


def test_table_loss_matches_brute_force():
    images, texts = gapped_pairs(rows=12)

    table = loss_along_gap(images, texts, shifts=[-0.2, 0.0, 0.5], temperatures=[0.05, 1.0])

    for row in table.itertuples():
        x, y = (tensor.numpy().astype(np.float64) for tensor in shift_modalities(images, texts, row.shift))
        assert row.loss == pytest.approx(brute_force_clip_loss(x, y, row.temperature), rel=1e-4)


def test_table_shape_and_order():
    images, texts = gapped_pairs()

    table = loss_along_gap(images, texts, shifts=[0.5, 0.0, -0.5], temperatures=[1.0, 0.1])

    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["temperature"].tolist() == [0.1] * 3 + [1.0] * 3
    assert table["shift"].tolist() == [-0.5, 0.0, 0.5] * 2


def test_loss_change_is_zero_without_shift():
    images, texts = gapped_pairs()

    table = loss_along_gap(images, texts, shifts=[0.0, 1.0], temperatures=[0.1, 1.0])

    assert table.loc[table["shift"] == 0.0, "loss_change"].abs().max() == pytest.approx(0.0, abs=1e-6)


def test_table_gap_shrinks_with_shift():
    images, texts = gapped_pairs()

    table = loss_along_gap(images, texts, shifts=[-0.5, 0.0, 0.5, 1.0], temperatures=[0.1])

    gaps = table["modality_gap"].tolist()
    assert gaps == sorted(gaps, reverse=True)


def test_minima_pick_lowest_loss_per_temperature():
    images, texts = gapped_pairs()
    table = loss_along_gap(images, texts, shifts=[-0.5, 0.0, 0.5, 1.0], temperatures=[0.05, 2.0])

    minima = loss_minima(table)

    for temperature, row in minima.iterrows():
        rows = table[table["temperature"] == temperature]
        assert row["loss"] == rows["loss"].min()
        assert row["shift"] == rows.loc[rows["loss"].idxmin(), "shift"]


def test_high_temperature_favors_closing_constant_offset():
    # With a constant offset and no other difference between modalities,
    # closing the gap raises every true-pair cosine, and a soft (high
    # temperature) softmax rewards that.
    images, texts = gapped_pairs()
    table = loss_along_gap(images, texts, shifts=[0.0, 0.5, 1.0], temperatures=[1.0])

    assert loss_minima(table).loc[1.0, "shift"] > 0


def test_table_rejects_bad_temperature():
    images, texts = gapped_pairs()

    with pytest.raises(ValueError, match="temperatures must contain numbers > 0, got 0"):
        loss_along_gap(images, texts, shifts=[0.0], temperatures=[0])


def test_table_rejects_scalar_shifts():
    images, texts = gapped_pairs()

    with pytest.raises(ValueError, match="shifts must be a non-empty list"):
        loss_along_gap(images, texts, shifts=0.5, temperatures=[0.1])


def test_table_rejects_single_pair():
    images, texts = gapped_pairs(rows=1)

    with pytest.raises(ValueError, match="at least 2 rows because InfoNCE needs negatives"):
        loss_along_gap(images, texts, shifts=[0.0], temperatures=[0.1])


def test_minima_reject_other_tables():
    with pytest.raises(ValueError, match="lacks the columns"):
        loss_minima(pd.DataFrame({"shift": [0.0]}))


def test_margins_match_brute_force():
    images, texts = gapped_pairs(rows=10)

    table = pair_margins(images, texts, shifts=[0.0, 0.7])

    for row in table.itertuples():
        x, y = (tensor.numpy().astype(np.float64) for tensor in shift_modalities(images, texts, row.shift))
        positives, hardest, mean_negatives = [], [], []
        for i in range(len(x)):
            others = [float(x[i] @ y[j]) for j in range(len(y)) if j != i]
            positives.append(float(x[i] @ y[i]))
            hardest.append(max(others))
            mean_negatives.append(sum(others) / len(others))
        assert row.true_pair_cosine == pytest.approx(np.mean(positives), abs=1e-5)
        assert row.hardest_negative_cosine == pytest.approx(np.mean(hardest), abs=1e-5)
        assert row.mean_negative_cosine == pytest.approx(np.mean(mean_negatives), abs=1e-5)
        assert row.margin_to_hardest == pytest.approx(np.mean(positives) - np.mean(hardest), abs=1e-5)
        assert row.margin_to_mean == pytest.approx(np.mean(positives) - np.mean(mean_negatives), abs=1e-5)


def test_margins_sorted_by_shift():
    images, texts = gapped_pairs()

    table = pair_margins(images, texts, shifts=[1.0, -0.5, 0.0])

    assert table["shift"].tolist() == [-0.5, 0.0, 1.0]


def test_margins_reject_single_pair():
    images, texts = gapped_pairs(rows=1)

    with pytest.raises(ValueError, match="every image needs a negative caption"):
        pair_margins(images, texts, shifts=[0.0])
