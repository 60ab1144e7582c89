"""Contrastive and gap-closing losses on L2-normalized embeddings.

All functions take ``image_embeddings`` x and ``text_embeddings`` y of shape
(N, D), unit L2 norm per row, row i of both from pair i.

- :func:`clip_loss`: symmetric InfoNCE with logits ``logit_scale * x yᵀ``.
- :func:`align_true_pairs` (ATP): ``mean_i ||x_i - y_i||²``.
- :func:`centroid_uniformity` (CU): ``log mean_{i≠j} exp(-t ||c_i - c_j||²)``
  with ``c_i = normalize((x_i + y_i) / 2)``.
- :func:`uniformity`: the same kernel on one modality (Wang and Isola, 2020),
  used per modality by the baseline of Fahim et al. (2024).

:class:`GapClosingLoss` combines them as
``L = L_CLIP + w_ATP(p) L_ATP + w_CU(p) L_CU + w_align L_align + w_unif (U(x) + U(y)) / 2``
where ``p`` in [0, 1] is training progress and the weights follow
:class:`WeightSchedule`. Under ``torch.distributed`` it gathers the global
batch once, with gradients (as open_clip's ``gather_features`` does with
``gather_with_grad=True``), so InfoNCE negatives and CU pairs span every
process and each process's loss equals the single-process loss on the global batch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from medgap_utils.config import LossConfig

# Ramps of the gap-closing objective's public code (Grassucci et al., ICLR 2026):
# ATP weight x1 -> x2 over the second half, CU weight x1 -> x0 from 20 % to 70 %.
ATP_RAMP = (1.0, 2.0, 0.5, 1.0)
CU_RAMP = (1.0, 0.0, 0.2, 0.7)


def _check_pair(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, minimum_rows: int = 1) -> None:
    for name, tensor in (("image_embeddings", image_embeddings), ("text_embeddings", text_embeddings)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.ndim != 2:
            raise ValueError(f"{name} must have shape (N, D), got {tuple(tensor.shape)}")
    if image_embeddings.shape != text_embeddings.shape:
        raise ValueError(
            f"image_embeddings {tuple(image_embeddings.shape)} and text_embeddings "
            f"{tuple(text_embeddings.shape)} must have the same shape (row i of both is pair i)"
        )
    if image_embeddings.shape[0] < minimum_rows:
        raise ValueError(f"this loss needs at least {minimum_rows} pairs, got {image_embeddings.shape[0]}")


def clip_loss(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
              logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Return the symmetric InfoNCE loss (mean of image->text and text->image cross-entropy).

    Args:
        logit_scale: the multiplier ``1 / temperature`` (not its logarithm).
    """
    _check_pair(image_embeddings, text_embeddings)
    logits_per_image = logit_scale * image_embeddings @ text_embeddings.T
    labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.T, labels)) / 2


def align_true_pairs(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """Return ATP, the mean squared distance of true pairs ``mean_i ||x_i - y_i||²``.

    On unit vectors it equals ``2 (1 - mean_i <x_i, y_i>)``; range [0, 4].
    """
    _check_pair(image_embeddings, text_embeddings)
    return (image_embeddings - text_embeddings).pow(2).sum(dim=1).mean()


def _log_mean_exp_off_diagonal(points: torch.Tensor, t: float) -> torch.Tensor:
    """``log mean_{i≠j} exp(-t ||p_i - p_j||²)`` for unit rows, via the Gram matrix.

    ``||p_i - p_j||² = 2 - 2 <p_i, p_j>`` for unit vectors, which (unlike
    ``torch.pdist``) has a finite gradient when two points coincide.
    """
    n = points.shape[0]
    squared_distances = (2 - 2 * points @ points.T).clamp_min(0)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=points.device)
    return torch.logsumexp(-t * squared_distances[off_diagonal], dim=0) - math.log(n * (n - 1))


def uniformity(embeddings: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Return the uniformity ``log mean_{i≠j} exp(-t ||z_i - z_j||²)`` of unit rows (N >= 2), in [-4t, 0].

    Lower is more uniform on the sphere.
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"embeddings must be a tensor of shape (N, D) with N >= 2, got "
                         f"{tuple(getattr(embeddings, 'shape', ()))}")
    return _log_mean_exp_off_diagonal(embeddings, t)


def pair_centroids(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
    """Return the re-normalized centroids ``normalize((x_i + y_i) / 2)`` of the pairs, (N, D)."""
    _check_pair(image_embeddings, text_embeddings)
    return F.normalize((image_embeddings + text_embeddings) / 2, dim=1)


def centroid_uniformity(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Return CU, the uniformity of the re-normalized pair centroids (N >= 2 pairs)."""
    _check_pair(image_embeddings, text_embeddings, minimum_rows=2)
    return _log_mean_exp_off_diagonal(pair_centroids(image_embeddings, text_embeddings), t)


@dataclasses.dataclass(frozen=True)
class WeightSchedule:
    """A loss weight as a function of training progress p in [0, 1].

    The weight is ``base * r(p)`` where ``r`` is ``start`` before
    ``start_fraction``, ``end`` after ``end_fraction`` and linear in between.
    A constant schedule has ``start == end``.
    """

    base: float
    start: float = 1.0
    end: float = 1.0
    start_fraction: float = 0.0
    end_fraction: float = 1.0

    def __call__(self, progress: float) -> float:
        if self.end_fraction <= self.start_fraction:
            ramp = self.end if progress >= self.end_fraction else self.start
        else:
            fraction = min(max((progress - self.start_fraction) / (self.end_fraction - self.start_fraction), 0.0), 1.0)
            ramp = self.start + (self.end - self.start) * fraction
        return self.base * ramp

    @classmethod
    def constant(cls, value: float) -> WeightSchedule:
        """Return a schedule that is ``value`` throughout."""
        return cls(base=value)

    @classmethod
    def ramp(cls, base: float, start: float, end: float, start_fraction: float, end_fraction: float) -> WeightSchedule:
        """Return ``base`` times a linear ramp from ``start`` to ``end`` between two progress fractions."""
        return cls(base, start, end, start_fraction, end_fraction)


class _AllGatherWithGradient(torch.autograd.Function):
    """Concatenation of every process's equally shaped tensor in rank order, differentiable.

    The backward sums the gradient that every process computed for the whole
    concatenation and returns this process's rows of the sum. It uses only
    ``all_gather`` and ``all_reduce``, which every backend (gloo included) supports.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.start, ctx.rows = dist.get_rank() * tensor.shape[0], tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, gradient: torch.Tensor) -> torch.Tensor:
        total = gradient.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.start:ctx.start + ctx.rows]


def gather_batch(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every process's embeddings in rank order, keeping gradients.

    Without an initialized process group (or with one process) the inputs are
    returned unchanged. Every process must pass the same number of rows. The
    backward sums the gradient of every process's copy of the global loss,
    so after the usual data-parallel gradient averaging each parameter
    receives the gradient of the loss on the global batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return image_embeddings, text_embeddings
    return _AllGatherWithGradient.apply(image_embeddings), _AllGatherWithGradient.apply(text_embeddings)


@dataclasses.dataclass
class LossOutput:
    """The total loss and its terms (unweighted) at one step, plus the weights used."""

    total: torch.Tensor
    clip: torch.Tensor
    atp: torch.Tensor
    cu: torch.Tensor
    align: torch.Tensor
    uniform: torch.Tensor
    weights: dict[str, float]

    def as_floats(self) -> dict[str, float]:
        """Return the detached values as floats keyed ``loss``, ``loss_clip``, ``loss_atp``, ..."""
        values = {"loss": self.total, "loss_clip": self.clip, "loss_atp": self.atp, "loss_cu": self.cu,
                  "loss_align": self.align, "loss_uniform": self.uniform}
        return {key: float(value.detach()) for key, value in values.items()}


class GapClosingLoss(nn.Module):
    """CLIP loss plus weighted ATP, CU and Fahim-style terms, on the global batch.

    Args:
        atp, cu, align, uniform: weight schedules of the four extra terms.
        uniformity_t: ``t`` of the uniformity kernels.
        gather: gather embeddings across processes when ``torch.distributed`` is initialized.

    A term whose weight is 0 for the whole run is not computed (its output is 0),
    so with all weights 0 the loss is exactly :func:`clip_loss`.
    """

    def __init__(self, atp: WeightSchedule | None = None, cu: WeightSchedule | None = None,
                 align: WeightSchedule | None = None, uniform: WeightSchedule | None = None,
                 uniformity_t: float = 2.0, gather: bool = True) -> None:
        super().__init__()
        zero = WeightSchedule.constant(0.0)
        self.schedules = {"atp": atp or zero, "cu": cu or zero, "align": align or zero, "uniform": uniform or zero}
        self.uniformity_t = uniformity_t
        self.gather = gather

    @classmethod
    def from_config(cls, config: LossConfig) -> GapClosingLoss:
        """Build the loss of a :class:`~medgap_utils.config.LossConfig`."""
        if config.schedule == "ramp":
            atp = WeightSchedule.ramp(config.lambda_atp, *ATP_RAMP)
            cu = WeightSchedule.ramp(config.lambda_cu, *CU_RAMP)
        else:
            atp, cu = WeightSchedule.constant(config.lambda_atp), WeightSchedule.constant(config.lambda_cu)
        return cls(atp=atp, cu=cu, align=WeightSchedule.constant(config.lambda_align),
                   uniform=WeightSchedule.constant(config.lambda_uniform), uniformity_t=config.uniformity_t)

    def weights(self, progress: float) -> dict[str, float]:
        """Return each extra term's weight at training progress ``progress`` in [0, 1]."""
        return {name: schedule(progress) for name, schedule in self.schedules.items()}

    def forward(self, image_embeddings: torch.Tensor, text_embeddings: torch.Tensor,
                logit_scale: torch.Tensor | float, progress: float = 0.0) -> LossOutput:
        """Return the loss of one (local) batch of L2-normalized embeddings.

        Args:
            image_embeddings, text_embeddings: (B, D) unit rows; under
                ``torch.distributed`` each process passes its own B rows.
            logit_scale: the multiplier ``1 / temperature``.
            progress: fraction of training done, in [0, 1], for the schedules.
        """
        _check_pair(image_embeddings, text_embeddings, minimum_rows=2)
        if self.gather:
            image_embeddings, text_embeddings = gather_batch(image_embeddings, text_embeddings)
        weights = self.weights(progress)
        zero = image_embeddings.new_zeros(())

        clip = clip_loss(image_embeddings, text_embeddings, logit_scale)
        atp = align_true_pairs(image_embeddings, text_embeddings) if self._used("atp") else zero
        cu = centroid_uniformity(image_embeddings, text_embeddings, self.uniformity_t) if self._used("cu") else zero
        align = align_true_pairs(image_embeddings, text_embeddings) if self._used("align") else zero
        uniform = ((uniformity(image_embeddings, self.uniformity_t) + uniformity(text_embeddings, self.uniformity_t)) / 2
                   if self._used("uniform") else zero)

        total = clip
        for name, term in (("atp", atp), ("cu", cu), ("align", align), ("uniform", uniform)):
            if weights[name] != 0.0:
                total = total + weights[name] * term
        return LossOutput(total=total, clip=clip, atp=atp, cu=cu, align=align, uniform=uniform, weights=weights)

    def _used(self, name: str) -> bool:
        schedule = self.schedules[name]
        return schedule.base != 0.0 and (schedule.start != 0.0 or schedule.end != 0.0)
