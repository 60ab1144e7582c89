"""Input checks shared by every public metric.

Public functions call these once at their boundary and pass the returned
float32 tensors to private helpers that trust them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# A row counts as L2-normalized when its norm is within this distance of 1.
# The tolerance admits float16 or bfloat16 embeddings that were normalized
# before a cast to float32, and still catches raw features, whose norms are
# rarely within a percent of 1.
NORM_TOLERANCE = 1e-2


def _as_float_tensor(value: Any, name: str) -> torch.Tensor:
    """Convert a tensor or array to a detached float32 tensor on its device."""
    if isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got a numpy array of dtype {value.dtype}.")
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {value.dtype}.")
        return value.detach().to(torch.float32)

    raise TypeError(
        f"{name} must be a torch.Tensor or a numpy.ndarray of shape (N, D), "
        f"got {type(value).__name__}. Convert it with torch.as_tensor(...) first."
    )


def check_matrix(
    embeddings: Any,
    name: str,
    *,
    normalize: bool = False,
    min_rows: int = 1,
    requirement: str = "",
) -> torch.Tensor:
    """Validate one (N, D) embedding matrix and return it as float32.

    Args:
        embeddings: tensor or array of shape (N, D).
        name: the argument name used in error messages.
        normalize: L2-normalize the rows instead of rejecting rows whose norm
            is not 1.
        min_rows: the smallest N the calling metric accepts.
        requirement: why the metric needs ``min_rows`` rows, for the message.

    Raises:
        TypeError: if ``embeddings`` is not a real-valued tensor or array.
        ValueError: if it is not 2-D, has fewer than ``min_rows`` rows or no
            columns, contains NaN or infinity, or (without ``normalize``) has a
            row norm farther than ``NORM_TOLERANCE`` from 1. With
            ``normalize``, a row of zeros raises because it has no direction.
    """
    matrix = _as_float_tensor(embeddings, name)

    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must have shape (N, D), got shape {tuple(matrix.shape)}. "
            "Stack one embedding per row; reshape a single vector with .reshape(1, -1)."
        )
    rows, columns = matrix.shape
    if rows < min_rows:
        reason = f" because {requirement}" if requirement else ""
        raise ValueError(f"{name} needs at least {min_rows} rows{reason}, got {rows}.")
    if columns == 0:
        raise ValueError(f"{name} must have at least one column, got shape {tuple(matrix.shape)}.")

    finite = torch.isfinite(matrix)
    if not bool(finite.all()):
        bad_rows = (~finite).any(dim=1).nonzero().flatten()
        raise ValueError(
            f"{name} contains NaN or infinite values in {bad_rows.numel()} of {rows} rows "
            f"(first: row {int(bad_rows[0])}). Remove those rows or fix the encoder output."
        )

    norms = torch.linalg.vector_norm(matrix, dim=1)
    if normalize:
        zero_rows = (norms == 0).nonzero().flatten()
        if zero_rows.numel():
            raise ValueError(
                f"{name} has {zero_rows.numel()} rows of zeros (first: row {int(zero_rows[0])}), "
                "which have no direction and cannot be L2-normalized. Remove them."
            )
        return matrix / norms[:, None]

    deviation = float((norms - 1).abs().max())
    if deviation > NORM_TOLERANCE:
        raise ValueError(
            f"{name} must be L2-normalized (every row norm within {NORM_TOLERANCE:g} of 1), "
            f"but its row norms range from {float(norms.min()):.4g} to {float(norms.max()):.4g}. "
            "Normalize the rows first (torch.nn.functional.normalize(x, dim=-1)) "
            "or pass normalize=True."
        )
    return matrix


def check_embeddings(
    image_embeddings: Any,
    text_embeddings: Any,
    *,
    normalize: bool = False,
    min_rows: int = 1,
    requirement: str = "",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair of row-aligned embedding matrices and return them as float32.

    Row i of ``image_embeddings`` and row i of ``text_embeddings`` are a true
    image-text pair. Tensors stay on their device (detached); numpy arrays
    become CPU tensors.

    Args:
        image_embeddings: tensor or array of shape (N, D).
        text_embeddings: tensor or array of shape (N, D).
        normalize: L2-normalize the rows instead of rejecting rows whose norm
            is farther than ``NORM_TOLERANCE`` from 1.
        min_rows: the smallest N the calling metric accepts.
        requirement: why the metric needs ``min_rows`` rows, for the message.

    Returns:
        ``(image_embeddings, text_embeddings)`` as float32 tensors of shape (N, D).

    Raises:
        TypeError: if either input is not a real-valued tensor or array.
        ValueError: if either is not 2-D, they differ in N or D, N is below
            ``min_rows``, a value is NaN or infinite, or a row is not
            L2-normalized (the message gives the observed norm range).

    Example:
        >>> import torch
        >>> x, y = check_embeddings(torch.eye(3), torch.eye(3))
        >>> x.dtype
        torch.float32
    """
    images = check_matrix(
        image_embeddings, "image_embeddings", normalize=normalize, min_rows=min_rows, requirement=requirement
    )
    texts = check_matrix(
        text_embeddings, "text_embeddings", normalize=normalize, min_rows=min_rows, requirement=requirement
    )

    if images.shape[0] != texts.shape[0]:
        raise ValueError(
            f"image_embeddings and text_embeddings must have the same number of rows "
            f"(row i of each is a true pair), got {images.shape[0]} and {texts.shape[0]}."
        )
    if images.shape[1] != texts.shape[1]:
        raise ValueError(
            f"image_embeddings and text_embeddings must have the same dimension D "
            f"(one shared space), got {images.shape[1]} and {texts.shape[1]}."
        )
    if images.device != texts.device:
        texts = texts.to(images.device)
    return images, texts


def check_labels(labels: Any, rows: int, name: str = "labels") -> np.ndarray:
    """Validate per-row labels and return them as a 1-D numpy array.

    Labels may be any hashable values (strings, integers); they are compared
    for equality only.

    Raises:
        TypeError: if ``labels`` is a string or not a sequence, array-like or tensor.
        ValueError: if it is not 1-D or its length is not ``rows``.
    """
    if isinstance(labels, torch.Tensor):
        array = labels.detach().cpu().numpy()
    elif isinstance(labels, np.ndarray):
        array = labels
    elif hasattr(labels, "__array__") and not isinstance(labels, (str, bytes)):
        # pandas Series and other array-likes.
        array = np.asarray(labels)
    elif isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)):
        array = np.asarray(labels, dtype=object)
        if all(isinstance(value, (int, np.integer)) for value in labels):
            array = array.astype(np.int64)
    else:
        raise TypeError(
            f"{name} must be a sequence, numpy array or tensor with one label per row, "
            f"got {type(labels).__name__}."
        )

    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one label per row, got shape {array.shape}.")
    if array.shape[0] != rows:
        raise ValueError(f"{name} must have one label per row ({rows}), got {array.shape[0]} labels.")
    return array


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)
