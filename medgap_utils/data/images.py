"""Image decoding and cleaning: bad bytes, unusual modes, empty captions, repeated ids.

Medical images arrive in modes an encoder does not take directly. The rules
(:func:`to_rgb`):

- 16-bit and 32-bit grayscale (``I;16``, ``I``, ``F``) are rescaled linearly
  from the image's own minimum-maximum range to 8 bits, because their raw
  values (e.g. 0-4095 for 12-bit scanners) would otherwise saturate;
- RGBA and LA are composited over black, the background of scanner images;
- palette (``P``) images are expanded through their palette;
- grayscale (``L``, ``1``) is repeated into three channels.

Rows whose image bytes do not decode, or whose caption is empty after
whitespace is collapsed, are dropped by :func:`drop_invalid_rows`, which
also drops later rows that repeat an ``image_id``, and logs each count.
"""

from __future__ import annotations

import io
import logging
import re

import datasets
import numpy as np
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

_WHITESPACE = re.compile(r"\s+")


def clean_caption(caption: str | None) -> str:
    """Collapse runs of whitespace to one space and strip the ends; None becomes ''."""
    if caption is None:
        return ""
    return _WHITESPACE.sub(" ", str(caption)).strip()


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB following the rules in the module docstring.

    Raises:
        TypeError: if ``image`` is not a ``PIL.Image.Image``.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL.Image.Image, got {type(image).__name__}.")
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return Image.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def decode_image(value) -> Image.Image:
    """Decode an image cell (PIL image, ``{"bytes", "path"}`` dict or raw bytes) fully.

    Raises:
        ValueError: if the bytes are missing, corrupt or truncated.
    """
    if isinstance(value, Image.Image):
        value.load()
        return value
    data, path = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
    try:
        if data is not None:
            image = Image.open(io.BytesIO(data))
        elif path:
            image = Image.open(path)
        else:
            raise ValueError("the image cell has neither bytes nor a path")
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot decode image: {error}") from error
    return image


def drop_invalid_rows(
    dataset: datasets.Dataset,
    image_column: str = "image",
    caption_column: str = "caption",
    id_column: str | None = "image_id",
) -> datasets.Dataset:
    """Return ``dataset`` without rows that cannot be used for training, with cleaned captions.

    Drops, and logs the count of, rows whose image does not decode (corrupt
    or truncated bytes), rows whose caption is empty or whitespace-only, and
    rows that repeat an earlier row's ``image_id``. Captions are cleaned with
    :func:`clean_caption`. Images are decoded once here (a full pass).

    Raises:
        ValueError: if a named column is missing.
    """
    for column in (image_column, caption_column, id_column):
        if column is not None and column not in dataset.column_names:
            raise ValueError(f"Column {column!r} not found; the dataset has {dataset.column_names}.")

    raw = dataset.cast_column(image_column, datasets.Image(decode=False))
    seen: set[str] = set()
    keep: list[int] = []
    counts = {"unreadable image": 0, "empty caption": 0, "duplicate image_id": 0}
    for index, row in enumerate(raw):
        caption = clean_caption(row[caption_column])
        if not caption:
            counts["empty caption"] += 1
            continue
        try:
            decode_image(row[image_column])
        except ValueError as error:
            counts["unreadable image"] += 1
            logger.debug("Dropping row %d: %s", index, error)
            continue
        if id_column is not None:
            image_id = str(row[id_column])
            if image_id in seen:
                counts["duplicate image_id"] += 1
                continue
            seen.add(image_id)
        keep.append(index)

    dropped = {reason: count for reason, count in counts.items() if count}
    if dropped:
        logger.warning("Dropped %d of %d rows: %s", len(dataset) - len(keep), len(dataset),
                       ", ".join(f"{count} with {reason}" for reason, count in dropped.items()))
    cleaned = dataset.select(keep)
    return cleaned.map(
        lambda batch: {caption_column: [clean_caption(caption) for caption in batch]},
        batched=True, input_columns=[caption_column], desc="clean captions",
    )
