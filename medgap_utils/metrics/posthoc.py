"""Post-hoc closing of the modality gap: transforms of trained embeddings.

Both transforms move whole modalities, so any trained model can be compared
with a fix that needs no retraining. The modality means can be estimated on
one split (``image_mean``, ``text_mean``) and applied to another, as a
deployed fix would be.
"""

from __future__ import annotations

from typing import Any

import torch

from ._validation import _as_float_tensor, check_embeddings


def _check_mean(mean: Any, name: str, dimension: int, device: torch.device) -> torch.Tensor:
    vector = _as_float_tensor(mean, name)
    if vector.shape != (dimension,):
        raise ValueError(f"{name} must have shape ({dimension},), got {tuple(vector.shape)}.")
    if not bool(torch.isfinite(vector).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return vector.to(device)


def _modality_means(
    images: torch.Tensor, texts: torch.Tensor, image_mean: Any, text_mean: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    dimension, device = images.shape[1], images.device
    image_mean = images.mean(dim=0) if image_mean is None else _check_mean(image_mean, "image_mean", dimension, device)
    text_mean = texts.mean(dim=0) if text_mean is None else _check_mean(text_mean, "text_mean", dimension, device)
    return image_mean, text_mean


def _renormalize(embeddings: torch.Tensor, name: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(embeddings, dim=1, keepdim=True)
    zero_rows = (norms.squeeze(1) == 0).nonzero().flatten()
    if zero_rows.numel():
        raise ValueError(
            f"After the shift, {zero_rows.numel()} rows of {name} are zero (first: row "
            f"{int(zero_rows[0])}) and have no direction to re-normalize; pass renormalize=False "
            "or remove those rows."
        )
    return embeddings / norms


def center_modalities(
    image_embeddings: Any,
    text_embeddings: Any,
    *,
    image_mean: Any = None,
    text_mean: Any = None,
    renormalize: bool = True,
    normalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Subtract each modality's mean, then L2-normalize every row again.

    Without re-normalization the centroids coincide at 0, so the modality
    gap is exactly 0; re-normalization brings the rows back onto the sphere
    and leaves a small gap.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        image_mean, text_mean: optional (D,) means to subtract, for example
            from a training split; by default the means of the inputs.
        renormalize: L2-normalize the centered rows.
        normalize: L2-normalize the input rows first instead of raising.

    Returns:
        ``(image_embeddings, text_embeddings)``: new float32 tensors of
        shape (N, D) on the input device.

    Raises:
        ValueError: if a mean has the wrong shape or is not finite, a
            centered row is zero and ``renormalize`` is set, and see
            :func:`check_embeddings`.
    """
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    image_mean, text_mean = _modality_means(images, texts, image_mean, text_mean)

    images, texts = images - image_mean, texts - text_mean
    if renormalize:
        images, texts = _renormalize(images, "image_embeddings"), _renormalize(texts, "text_embeddings")
    return images, texts


def shift_along_gap(
    image_embeddings: Any,
    text_embeddings: Any,
    lam: float,
    *,
    image_mean: Any = None,
    text_mean: Any = None,
    renormalize: bool = True,
    normalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the two modalities toward each other along the gap vector, then re-normalize.

    With the gap vector ``delta = mean(x) - mean(y)``, every image row moves
    by ``-lam / 2 * delta`` and every text row by ``+lam / 2 * delta``.
    Before re-normalization the centroid distance becomes
    ``(1 - lam) * ||delta||``: ``lam = 0`` changes nothing and ``lam = 1``
    makes the centroids coincide at their midpoint.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        lam: the fraction of the gap to close, in [0, 1].
        image_mean, text_mean: optional (D,) means that define ``delta``,
            for example from a training split; by default the means of the inputs.
        renormalize: L2-normalize the shifted rows.
        normalize: L2-normalize the input rows first instead of raising.

    Returns:
        ``(image_embeddings, text_embeddings)``: new float32 tensors of
        shape (N, D) on the input device.

    Raises:
        ValueError: if ``lam`` is outside [0, 1], a mean has the wrong shape
            or is not finite, a shifted row is zero and ``renormalize`` is
            set, and see :func:`check_embeddings`.
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be a number in [0, 1] (the fraction of the gap to close), got {lam!r}.")
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    image_mean, text_mean = _modality_means(images, texts, image_mean, text_mean)

    half_step = lam / 2 * (image_mean - text_mean)
    images, texts = images - half_step, texts + half_step
    if renormalize:
        images, texts = _renormalize(images, "image_embeddings"), _renormalize(texts, "text_embeddings")
    return images, texts
