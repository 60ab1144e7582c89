"""Input checks shared by the public figure functions of ``medgap_utils.viz``.

Each public function calls these once on its arguments; the helpers behind
it trust what they receive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Embeddings stored as float16 or rounded in a cache are normalized only to
# about three digits, so the unit-norm check allows this much.
NORM_TOLERANCE = 1e-2


def to_numpy(value: Any) -> np.ndarray:
    """Return ``value`` as a numpy array; torch tensors are detached and moved to CPU."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value)


def check_embeddings(value: Any, name: str, dim: int | None = None) -> np.ndarray:
    """Return ``value`` as a finite, L2-normalized float32 array of shape (N, D).

    Raises:
        TypeError: if ``value`` is not numeric.
        ValueError: if it is not 2-D, is empty, contains NaN or infinity, has a
            row whose norm differs from 1 by more than ``NORM_TOLERANCE``, or
            has ``D != dim`` when ``dim`` is given.
    """
    array = to_numpy(value)
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}.")
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N >= 1, got shape {array.shape}.")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got shape {array.shape}.")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the encoder outputs.")
    norms = np.linalg.norm(array, axis=1)
    worst = int(np.argmax(np.abs(norms - 1.0)))
    if abs(norms[worst] - 1.0) > NORM_TOLERANCE:
        raise ValueError(
            f"{name} must be L2-normalized, but row {worst} has norm {norms[worst]:.4f}; "
            f"divide each row by its norm first."
        )
    return array


def check_pairs(image_embeddings: Any, text_embeddings: Any, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check both embedding blocks and that row i of one pairs with row i of the other."""
    image = check_embeddings(image_embeddings, "image_embeddings", dim)
    text = check_embeddings(text_embeddings, "text_embeddings", dim)
    if image.shape != text.shape:
        raise ValueError(
            f"image_embeddings and text_embeddings must have the same shape (row i pairs with row i), "
            f"got {image.shape} and {text.shape}."
        )
    return image, text


def check_labels(labels: Mapping[str, Sequence] | None, count: int) -> dict[str, np.ndarray]:
    """Return the label columns as arrays of strings, each of length ``count``.

    Raises:
        TypeError: if ``labels`` is not a mapping of column name to sequence.
        ValueError: if a column has another length, or a column is named
            ``"modality"`` (that name is reserved for image vs text).
    """
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a dict of column name -> sequence of strings, got {type(labels).__name__}.")
    columns = {}
    for column, values in labels.items():
        if column == "modality":
            raise ValueError(
                "labels has a column named 'modality', which is reserved for image vs text; "
                "rename it, e.g. to 'imaging_modality'."
            )
        values = to_numpy(values) if not isinstance(values, (list, tuple)) else np.asarray(values, dtype=object)
        if values.ndim != 1 or len(values) != count:
            raise ValueError(f"labels[{column!r}] must have {count} values (one per pair), got shape {values.shape}.")
        columns[str(column)] = np.asarray([str(value) for value in values], dtype=object)
    return columns


def check_captions(captions: Sequence[str] | None, count: int) -> list[str] | None:
    """Return ``captions`` as a list of ``count`` strings, or ``None``."""
    if captions is None:
        return None
    if isinstance(captions, str) or len(captions) != count:
        length = "a string" if isinstance(captions, str) else f"{len(captions)} captions"
        raise ValueError(f"captions must be a sequence of {count} strings (one per pair), got {length}.")
    return [str(caption) for caption in captions]


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ValueError."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


def to_table(table: Any, name: str = "table") -> Any:
    """Return ``table`` (a list of dicts or a DataFrame) as a pandas DataFrame.

    Raises:
        TypeError: if ``table`` is neither.
        ValueError: if it has no rows.
    """
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        frame = table.reset_index(drop=True)
    elif isinstance(table, Sequence) and all(isinstance(row, Mapping) for row in table):
        frame = pd.DataFrame(list(table))
    else:
        raise TypeError(f"{name} must be a pandas DataFrame or a list of dicts, got {type(table).__name__}.")
    if frame.empty:
        raise ValueError(f"{name} has no rows; run the sweep first.")
    return frame


def check_columns(frame: Any, columns: Sequence[str], name: str = "table") -> None:
    """Raise ValueError naming the missing columns of ``frame``."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} has no column(s) {missing}; its columns are {list(frame.columns)}.")
