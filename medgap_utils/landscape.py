"""The contrastive loss along the modality gap: the embedding-shift experiment.

Liang et al. ("Mind the Gap", NeurIPS 2022) move trained image and text
embeddings toward each other along the gap vector, re-normalize them, and
evaluate the contrastive loss at each shift. Where the loss is lowest tells
whether the contrastive objective, at a given temperature, keeps the gap
open or would close it.

A shift ``s`` moves every image row by ``-s / 2 * delta`` and every text row
by ``+s / 2 * delta``, with ``delta = mean(x) - mean(y)``, as
:func:`medgap_utils.metrics.shift_along_gap` does for ``s`` in [0, 1]. Here
``s`` may be any real number: ``s < 0`` widens the gap and ``s > 1`` pushes
the modalities past each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from medgap_utils.losses import clip_loss
from medgap_utils.metrics import check_embeddings, modality_gap, true_pair_cosine

TABLE_COLUMNS = ("temperature", "shift", "modality_gap", "true_pair_cosine", "loss", "loss_change")


def _check_numbers(values: Any, name: str, *, positive: bool) -> list[float]:
    if isinstance(values, (int, float)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty list of numbers, got {values!r}.")
    numbers = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must contain finite numbers, got {value!r}.")
        if positive and value <= 0:
            raise ValueError(f"{name} must contain numbers > 0, got {value!r}.")
        numbers.append(float(value))
    return numbers


def _shift(images: torch.Tensor, texts: torch.Tensor, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    half_step = shift / 2 * (images.mean(dim=0) - texts.mean(dim=0))
    images, texts = images - half_step, texts + half_step
    image_norms = torch.linalg.vector_norm(images, dim=1, keepdim=True)
    text_norms = torch.linalg.vector_norm(texts, dim=1, keepdim=True)
    if bool((image_norms == 0).any() or (text_norms == 0).any()):
        raise ValueError(f"The shift {shift} moves a row onto zero, which has no direction to re-normalize. "
                         "Use a different shift.")
    return images / image_norms, texts / text_norms


def shift_modalities(image_embeddings: Any, text_embeddings: Any, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift both modalities along the gap vector by ``shift`` times the gap, then re-normalize.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        shift: fraction of the gap vector to close; 0 changes nothing, 1
            makes the centroids meet before re-normalization, negative
            values widen the gap.

    Returns:
        ``(image_embeddings, text_embeddings)``: float32 tensors (N, D), unit rows.

    Raises:
        ValueError: if ``shift`` is not a finite number, a shifted row is
            zero, and see :func:`medgap_utils.metrics.check_embeddings`.
    """
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
        raise ValueError(f"shift must be a finite number (the fraction of the gap to close), got {shift!r}.")
    images, texts = check_embeddings(image_embeddings, text_embeddings)
    return _shift(images, texts, float(shift))


def loss_along_gap(
    image_embeddings: Any,
    text_embeddings: Any,
    shifts: Sequence[float],
    temperatures: Sequence[float],
) -> pd.DataFrame:
    """Evaluate the CLIP loss of shifted embeddings for every shift and temperature.

    All N pairs form one batch, so the loss is the symmetric InfoNCE with
    N - 1 negatives per row (``medgap_utils.losses.clip_loss`` with
    ``logit_scale = 1 / temperature``).

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 2.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        shifts: fractions of the gap to close (see :func:`shift_modalities`).
        temperatures: softmax temperatures tau > 0.

    Returns:
        A DataFrame with one row per (temperature, shift), sorted by both,
        and the columns ``temperature``, ``shift``, ``modality_gap`` and
        ``true_pair_cosine`` (of the shifted embeddings), ``loss`` and
        ``loss_change`` (the loss minus the loss of the unshifted embeddings
        at the same temperature).

    Raises:
        ValueError: on empty or non-finite shifts, temperatures <= 0, fewer
            than 2 pairs, and see :func:`medgap_utils.metrics.check_embeddings`.
    """
    shifts = sorted(set(_check_numbers(shifts, "shifts", positive=False)))
    temperatures = sorted(set(_check_numbers(temperatures, "temperatures", positive=True)))
    images, texts = check_embeddings(image_embeddings, text_embeddings, min_rows=2,
                                     requirement="InfoNCE needs negatives")

    shifted = {shift: _shift(images, texts, shift) for shift in shifts}
    rows = []
    for temperature in temperatures:
        unshifted_loss = float(clip_loss(images, texts, 1 / temperature))
        for shift in shifts:
            x, y = shifted[shift]
            loss = float(clip_loss(x, y, 1 / temperature))
            rows.append({"temperature": temperature, "shift": shift, "modality_gap": modality_gap(x, y),
                         "true_pair_cosine": true_pair_cosine(x, y), "loss": loss,
                         "loss_change": loss - unshifted_loss})
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def loss_minima(table: pd.DataFrame) -> pd.DataFrame:
    """Return, per temperature, the row of :func:`loss_along_gap`'s table with the lowest loss.

    The result is indexed by ``temperature`` and has the other columns of
    the table: the minimizing ``shift``, the ``modality_gap`` there and
    ``loss_change``, the loss minus the loss without a shift (negative
    where a shift lowers the loss).

    Raises:
        ValueError: if ``table`` lacks a column of ``TABLE_COLUMNS``.
    """
    missing = [column for column in TABLE_COLUMNS if column not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(f"table lacks the columns {missing}. Pass the DataFrame that loss_along_gap returns.")
    best = table.loc[table.groupby("temperature")["loss"].idxmin()]
    return best.set_index("temperature")


def pair_margins(image_embeddings: Any, text_embeddings: Any, shifts: Sequence[float]) -> pd.DataFrame:
    """Compare true pairs with their negatives after each shift along the gap (image -> text direction).

    For image ``i`` the negatives are the captions ``j != i``. The hardest
    negative is the one with the highest cosine, the caption that a sharp
    (low temperature) softmax weighs most.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings, N >= 2.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        shifts: fractions of the gap to close (see :func:`shift_modalities`).

    Returns:
        A DataFrame with one row per shift, sorted, and the columns
        ``shift``, ``true_pair_cosine``, ``mean_negative_cosine`` and
        ``hardest_negative_cosine`` (means over images), ``margin_to_mean``
        (true-pair cosine minus mean negative cosine) and
        ``margin_to_hardest`` (true-pair cosine minus hardest negative
        cosine, averaged over images).

    Raises:
        ValueError: on empty or non-finite shifts, fewer than 2 pairs, and
            see :func:`medgap_utils.metrics.check_embeddings`.
    """
    shifts = sorted(set(_check_numbers(shifts, "shifts", positive=False)))
    images, texts = check_embeddings(image_embeddings, text_embeddings, min_rows=2,
                                     requirement="every image needs a negative caption")
    count = images.shape[0]
    off_diagonal = ~torch.eye(count, dtype=torch.bool, device=images.device)

    rows = []
    for shift in shifts:
        x, y = _shift(images, texts, shift)
        similarities = x @ y.T
        positives = similarities.diagonal()
        negatives = similarities[off_diagonal].view(count, count - 1)
        hardest = negatives.max(dim=1).values
        rows.append({
            "shift": shift,
            "true_pair_cosine": float(positives.mean()),
            "mean_negative_cosine": float(negatives.mean()),
            "hardest_negative_cosine": float(hardest.mean()),
            "margin_to_mean": float((positives - negatives.mean(dim=1)).mean()),
            "margin_to_hardest": float((positives - hardest).mean()),
        })
    return pd.DataFrame(rows)
