"""Specifications of the contrastive and gap-closing losses."""

import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from medgap_utils.config import LOSS_PRESETS, LossConfig
from medgap_utils.losses import (
    GapClosingLoss,
    WeightSchedule,
    align_true_pairs,
    centroid_uniformity,
    clip_loss,
    uniformity,
)


def unit_pairs(n=12, d=8, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=generator, dtype=dtype), dim=1)
    y = F.normalize(torch.randn(n, d, generator=generator, dtype=dtype), dim=1)
    return x, y


def test_clip_loss_matches_open_clip():
    x, y = unit_pairs()
    expected = ClipLoss()(x, y, logit_scale=torch.tensor(14.0))
    assert torch.allclose(clip_loss(x, y, torch.tensor(14.0)), expected, atol=1e-6)


def test_clip_loss_perfect_pairs_low():
    x, _ = unit_pairs(n=8, d=16)
    assert clip_loss(x, x, 100.0) < 0.01


def test_atp_equals_two_minus_two_cosine():
    x, y = unit_pairs()
    mean_cosine = (x * y).sum(dim=1).mean()
    assert torch.allclose(align_true_pairs(x, y), 2 * (1 - mean_cosine), atol=1e-6)


def test_cu_matches_brute_force_loop():
    x, y = unit_pairs(n=7, d=5, dtype=torch.float64)
    centroids = [(x[i] + y[i]) / 2 for i in range(7)]
    centroids = [c / c.norm() for c in centroids]
    total, count = 0.0, 0
    for i in range(7):
        for j in range(7):
            if i != j:
                total += math.exp(-2 * float(((centroids[i] - centroids[j]) ** 2).sum()))
                count += 1
    assert centroid_uniformity(x, y).item() == pytest.approx(math.log(total / count), abs=1e-10)


def test_uniformity_matches_pdist_form():
    x, _ = unit_pairs(n=9, d=4, dtype=torch.float64)
    expected = torch.pdist(x).pow(2).mul(-2).exp().mean().log()
    assert uniformity(x).item() == pytest.approx(expected.item(), abs=1e-10)


def test_cu_coincident_centroids_finite_gradient():
    x, _ = unit_pairs(n=4, d=3, dtype=torch.float64)
    x = x.clone().requires_grad_(True)
    centroid_uniformity(x, x.detach()[[0, 0, 1, 2]]).backward()
    assert torch.isfinite(x.grad).all()


def test_losses_pass_gradcheck_float64():
    x, y = unit_pairs(n=5, d=4, dtype=torch.float64)
    x.requires_grad_(True)
    y.requires_grad_(True)
    loss = GapClosingLoss.from_config(LossConfig(lambda_atp=0.7, lambda_cu=1.3, lambda_align=0.5, lambda_uniform=0.4))

    def objective(a, b):
        return loss(F.normalize(a, dim=1), F.normalize(b, dim=1), 10.0).total

    assert torch.autograd.gradcheck(objective, (x, y))


def test_zero_weights_give_clip_loss_exactly():
    x, y = unit_pairs()
    output = GapClosingLoss.from_config(LossConfig(lambda_atp=0.0, lambda_cu=0.0))(x, y, 10.0)
    assert torch.equal(output.total, clip_loss(x, y, 10.0))


def test_combined_is_weighted_sum():
    x, y = unit_pairs()
    output = GapClosingLoss.from_config(LossConfig(lambda_atp=0.5, lambda_cu=2.0))(x, y, 10.0)
    expected = clip_loss(x, y, 10.0) + 0.5 * align_true_pairs(x, y) + 2.0 * centroid_uniformity(x, y)
    assert torch.allclose(output.total, expected, atol=1e-6)


def test_ramp_schedule_matches_public_code():
    loss = GapClosingLoss.from_config(LOSS_PRESETS["clip_atp_cu"])
    assert loss.weights(0.0)["atp"] == pytest.approx(1.0)
    assert loss.weights(0.5)["atp"] == pytest.approx(1.0)
    assert loss.weights(0.75)["atp"] == pytest.approx(1.5)
    assert loss.weights(1.0)["atp"] == pytest.approx(2.0)
    assert loss.weights(0.2)["cu"] == pytest.approx(1.0)
    assert loss.weights(0.45)["cu"] == pytest.approx(0.5)
    assert loss.weights(0.7)["cu"] == pytest.approx(0.0)
    assert loss.weights(1.0)["cu"] == pytest.approx(0.0)


def test_constant_schedule_is_flat():
    schedule = WeightSchedule.constant(0.3)
    assert [schedule(p) for p in (0.0, 0.4, 1.0)] == [0.3, 0.3, 0.3]


def test_mismatched_shapes_rejected():
    x, y = unit_pairs()
    with pytest.raises(ValueError, match="same shape"):
        align_true_pairs(x, y[:, :4])


def test_cu_single_pair_rejected():
    x, y = unit_pairs(n=1)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        centroid_uniformity(x, y)
