"""Exact cross-modal retrieval ranks and recall, computed tile by tile.

Similarity is the dot product (cosine for L2-normalized rows). The rank of a
query is 1 plus the number of wrong gallery items that score higher than its
best correct item, so ranks are exact without sorting. The image-text score
matrix is computed in tiles, one matrix product each. Every tile adds, for
each of its rows and columns, the count of scores above that image's or
caption's best correct score, so one pass serves both retrieval
directions. The best correct scores are read from the same tiles before
anything is counted, so a correct item is never compared with a differently
rounded copy of its own score. Peak extra memory is two float32 tiles (the
scores and the comparison results), so 100k x 100k pairs never materialize a
full similarity matrix.

Several correct matches per query are supported. ``image_ids`` marks rows
that show the same image (several captions per image) and ``text_groups``
marks rows with the same caption text (duplicate captions). Each distinct
image and each distinct caption is one gallery item and one query, and
caption g is a correct match for image i when some row pairs them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ._validation import check_embeddings, check_labels, check_positive_int

logger = logging.getLogger(__name__)

TIE_RULES = ("optimistic", "pessimistic")

# Elements of one score tile when chunk_size is not given: 2**24 float32
# values (64 MiB, 4096 x 4096) on the CPU and 2**26 (256 MiB, 8192 x 8192) on
# a GPU, where larger tiles amortize kernel launches.
# NOTE: the GPU tile size is an estimate; only the CPU path has been timed.
_CPU_TILE_ELEMENTS = 2**24
_GPU_TILE_ELEMENTS = 2**26
# Comparison results are counted as sums of float32 zeros and ones, which are
# exact integers while a tile side is at most 2**24.
_MAX_TILE_SIDE = 2**24

# Rows that share an image id (or a text group) are expected to carry the same
# embedding. Only the first row is used, so a larger difference is logged.
_DUPLICATE_TOLERANCE = 1e-4


def _factorize(values: Any, rows: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's group code and the first row of each group.

    Codes follow the order of first appearance. ``None`` puts every row in
    its own group.
    """
    if values is None:
        identity = np.arange(rows, dtype=np.int64)
        return identity, identity

    labels = check_labels(values, rows, name)
    codes = np.empty(rows, dtype=np.int64)
    first_rows: list[int] = []
    code_of: dict[Any, int] = {}
    try:
        for row, value in enumerate(labels.tolist()):
            code = code_of.setdefault(value, len(code_of))
            if code == len(first_rows):
                first_rows.append(row)
            codes[row] = code
    except TypeError as error:
        raise TypeError(f"{name} must hold hashable values such as strings or integers: {error}") from error
    return codes, np.asarray(first_rows, dtype=np.int64)


def _warn_if_group_differs(embeddings: torch.Tensor, codes: np.ndarray, first_rows: np.ndarray, name: str) -> None:
    if len(first_rows) == len(codes):
        return
    representatives = embeddings[torch.from_numpy(first_rows[codes]).to(embeddings.device)]
    difference = float((embeddings - representatives).abs().max())
    if difference > _DUPLICATE_TOLERANCE:
        logger.warning(
            "Rows that share a value of %s differ by up to %.3g in some coordinate; "
            "retrieval uses the first row of each group.",
            name,
            difference,
        )


def _first_rows(embeddings: torch.Tensor, first_rows: np.ndarray) -> torch.Tensor:
    # Without duplicates the rows are used as they are, saving an N x D copy.
    if len(first_rows) == embeddings.shape[0]:
        return embeddings
    return embeddings[torch.from_numpy(first_rows).to(embeddings.device)]


def _resolve_device(requested: Any, embeddings: torch.Tensor) -> torch.device:
    if requested is not None:
        return torch.device(requested)
    if embeddings.device.type != "cpu":
        return embeddings.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _tile_shape(image_count: int, text_count: int, chunk_size: int | None, device: torch.device) -> tuple[int, int]:
    if chunk_size is not None:
        side = min(chunk_size, _MAX_TILE_SIDE)
        return min(image_count, side), min(text_count, side)
    budget = _CPU_TILE_ELEMENTS if device.type == "cpu" else _GPU_TILE_ELEMENTS
    # Square tiles unless one side is short, in which case the other side grows.
    tile_columns = min(text_count, max(math.isqrt(budget), budget // image_count), _MAX_TILE_SIDE)
    tile_rows = min(image_count, budget // tile_columns, _MAX_TILE_SIDE)
    return tile_rows, tile_columns


def _ranks_both_ways(
    images: torch.Tensor,
    texts: torch.Tensor,
    pair_images: torch.Tensor,
    pair_texts: torch.Tensor,
    ties: str,
    tile_shape: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the 1-based ranks of image queries over texts and of text queries over images.

    ``(pair_images[p], pair_texts[p])`` lists each correct image-caption
    combination once; every image and every caption has at least one.
    """
    device = images.device
    image_count, text_count = images.shape[0], texts.shape[0]
    tile_rows, tile_columns = tile_shape
    row_strips = -(-image_count // tile_rows)
    column_strips = -(-text_count // tile_columns)

    # Pairs sorted by the tile that contains their score.
    pair_tile = (pair_images // tile_rows) * column_strips + pair_texts // tile_columns
    order = torch.argsort(pair_tile)
    pair_tile, pair_images, pair_texts = pair_tile[order], pair_images[order], pair_texts[order]
    tiles_with_pairs, pairs_per_tile = torch.unique_consecutive(pair_tile, return_counts=True)
    tiles_with_pairs = tiles_with_pairs.tolist()
    pair_ends = pairs_per_tile.cumsum(dim=0).tolist()
    pair_slices = {
        tile: slice(end - count, end) for tile, count, end in zip(tiles_with_pairs, pairs_per_tile.tolist(), pair_ends)
    }

    best_image = torch.full((image_count,), -math.inf, device=device)
    best_text = torch.full((text_count,), -math.inf, device=device)
    above_image = torch.zeros(image_count, dtype=torch.int64, device=device)
    above_text = torch.zeros(text_count, dtype=torch.int64, device=device)
    score_storage = torch.empty(tile_rows * tile_columns, dtype=images.dtype, device=device)
    # Comparison results are stored as float32 0.0 and 1.0 because summing
    # them is about ten times faster than summing booleans, which torch widens
    # to int64 first (torch 2.14, one 4096 x 4096 tile on a 2-core x86_64 CPU).
    flag_storage = torch.empty(tile_rows * tile_columns, dtype=images.dtype, device=device)
    # A correct item never scores above the best correct one, so the strict
    # comparison counts wrong items only. The ">=" comparison also counts the
    # correct items tied with the best, and count_tile subtracts them again.
    compare = torch.gt if ties == "optimistic" else torch.ge

    def tile_scores(tile: int) -> tuple[torch.Tensor, int, int]:
        row_strip, column_strip = divmod(tile, column_strips)
        row_start, column_start = row_strip * tile_rows, column_strip * tile_columns
        row_stop = min(row_start + tile_rows, image_count)
        column_stop = min(column_start + tile_columns, text_count)
        shape = (row_stop - row_start, column_stop - column_start)
        scores = score_storage[: shape[0] * shape[1]].view(shape)
        torch.mm(images[row_start:row_stop], texts[column_start:column_stop].T, out=scores)
        return scores, row_start, column_start

    def pair_scores(tile: int, scores: torch.Tensor, row_start: int, column_start: int) -> torch.Tensor:
        pairs = pair_slices[tile]
        return scores[pair_images[pairs] - row_start, pair_texts[pairs] - column_start]

    def count_tile(tile: int, scores: torch.Tensor, row_start: int, column_start: int) -> None:
        rows, columns = scores.shape
        flags = flag_storage[: rows * columns].view(rows, columns)
        compare(scores, best_image[row_start : row_start + rows, None], out=flags)
        above_image[row_start : row_start + rows] += flags.sum(dim=1).long()
        compare(scores, best_text[None, column_start : column_start + columns], out=flags)
        above_text[column_start : column_start + columns] += flags.sum(dim=0).long()

        if ties == "pessimistic" and tile in pair_slices:
            pairs = pair_slices[tile]
            values = pair_scores(tile, scores, row_start, column_start)
            above_image.scatter_add_(0, pair_images[pairs], -(values == best_image[pair_images[pairs]]).long())
            above_text.scatter_add_(0, pair_texts[pairs], -(values == best_text[pair_texts[pairs]]).long())

    # First pass: the tiles that contain pairs fix every best correct score.
    # A tile is counted at once when no later tile can change the best scores
    # of its rows and columns. That covers every tile when pairs are unique,
    # and the remaining tiles are computed again below. Recomputing a tile
    # with the same operands and shape reproduces its scores bit for bit.
    pending_in_row = torch.bincount(torch.tensor(tiles_with_pairs) // column_strips, minlength=row_strips).tolist()
    pending_in_column = torch.bincount(
        torch.tensor(tiles_with_pairs) % column_strips, minlength=column_strips
    ).tolist()
    counted = set()
    for tile in tiles_with_pairs:
        scores, row_start, column_start = tile_scores(tile)
        values = pair_scores(tile, scores, row_start, column_start)
        pairs = pair_slices[tile]
        best_image.scatter_reduce_(0, pair_images[pairs], values, reduce="amax")
        best_text.scatter_reduce_(0, pair_texts[pairs], values, reduce="amax")

        row_strip, column_strip = divmod(tile, column_strips)
        pending_in_row[row_strip] -= 1
        pending_in_column[column_strip] -= 1
        if pending_in_row[row_strip] == 0 and pending_in_column[column_strip] == 0:
            count_tile(tile, scores, row_start, column_start)
            counted.add(tile)

    for tile in range(row_strips * column_strips):
        if tile not in counted:
            count_tile(tile, *tile_scores(tile))

    return above_image.cpu() + 1, above_text.cpu() + 1


def retrieval_ranks(
    image_embeddings: Any,
    text_embeddings: Any,
    *,
    image_ids: Any = None,
    text_groups: Any = None,
    ties: str = "optimistic",
    chunk_size: int | None = None,
    device: Any = None,
    normalize: bool = False,
) -> dict[str, torch.Tensor]:
    """Compute the exact rank of the first correct match of every query, both ways.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings; row i pairs
            with image row i.
        image_ids: optional length-N hashable ids. Rows with the same id
            show the same image, which becomes one query and one gallery
            item with the embedding of its first row.
        text_groups: optional length-N hashable keys; rows with the same key
            carry the same caption (for example the caption string itself),
            which becomes one query and one gallery item.
        ties: how a wrong item that scores exactly as high as the best correct
            item counts. ``"optimistic"`` (default) ranks the correct item
            first, so the rank is 1 + the number of wrong items scoring
            strictly higher. ``"pessimistic"`` ranks it after every tied wrong
            item. The two differ only on exact float32 ties, such as
            identical embeddings for different items or a collapsed encoder,
            where ``"optimistic"`` can report perfect recall.
        chunk_size: the largest side of a score tile (rows and columns per
            matrix product); by default tiles hold 2**24 (CPU) or 2**26 (GPU)
            float32 values.
        device: where to compute; by default the device of CUDA or other
            non-CPU input tensors, else ``"cuda"`` when available, else the CPU.
        normalize: L2-normalize the rows first instead of raising.

    Returns:
        ``{"image_to_text": ranks, "text_to_image": ranks}``: 1-based int64
        CPU tensors with one rank per distinct image and per distinct caption,
        in order of first appearance.

    Raises:
        ValueError: if ``ties`` is unknown, ``chunk_size`` < 1, the ids do
            not have one entry per row, and see :func:`check_embeddings`.
        TypeError: if an id is unhashable.
    """
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, got {ties!r}.")
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    images, texts = check_embeddings(image_embeddings, text_embeddings, normalize=normalize)
    rows = images.shape[0]

    image_codes, image_first_rows = _factorize(image_ids, rows, "image_ids")
    text_codes, text_first_rows = _factorize(text_groups, rows, "text_groups")
    _warn_if_group_differs(images, image_codes, image_first_rows, "image_ids")
    _warn_if_group_differs(texts, text_codes, text_first_rows, "text_groups")

    # Each correct (image, caption) combination once, even if rows repeat it.
    text_count = len(text_first_rows)
    pair_keys = np.unique(image_codes * text_count + text_codes)
    pair_images, pair_texts = pair_keys // text_count, pair_keys % text_count

    target = _resolve_device(device, images)
    unique_images = _first_rows(images, image_first_rows).to(target)
    unique_texts = _first_rows(texts, text_first_rows).to(target)
    with torch.no_grad():
        image_ranks, text_ranks = _ranks_both_ways(
            unique_images,
            unique_texts,
            torch.from_numpy(pair_images).to(target),
            torch.from_numpy(pair_texts).to(target),
            ties,
            _tile_shape(len(image_first_rows), len(text_first_rows), chunk_size, target),
        )
    return {"image_to_text": image_ranks, "text_to_image": text_ranks}


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    checked = tuple(check_positive_int(k, "each value of ks") for k in ks)
    if not checked:
        raise ValueError("ks must list at least one cutoff, such as (1, 5, 10).")
    return checked


def retrieval_metrics(
    image_embeddings: Any,
    text_embeddings: Any,
    *,
    image_ids: Any = None,
    text_groups: Any = None,
    ks: Iterable[int] = (1, 5, 10),
    ties: str = "optimistic",
    chunk_size: int | None = None,
    device: Any = None,
    normalize: bool = False,
) -> dict[str, float]:
    """Compute Recall@K, mean and median rank and MRR for image-to-text and text-to-image retrieval.

    Ranks come from :func:`retrieval_ranks`, which documents the handling of
    several correct matches, ties, chunking and devices.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings, row-aligned.
        image_ids, text_groups, ties, chunk_size, device, normalize: see
            :func:`retrieval_ranks`.
        ks: the cutoffs K of Recall@K.

    Returns:
        A dict of floats with, for ``d`` in ``image_to_text`` and
        ``text_to_image``:

        - ``f"{d}_R@{k}"``: the fraction (0 to 1, not percent) of queries
          whose first correct match has rank <= k.
        - ``f"{d}_mean_rank"`` and ``f"{d}_median_rank"``: 1-based ranks; the
          median of an even count is the mean of the two middle ranks.
        - ``f"{d}_MRR"``: mean reciprocal rank, from 0 to 1.

    Raises:
        ValueError: if a value of ``ks`` is below 1, and see :func:`retrieval_ranks`.

    Example:
        >>> import torch
        >>> metrics = retrieval_metrics(torch.eye(3), torch.eye(3), ks=(1,))
        >>> metrics["image_to_text_R@1"], metrics["text_to_image_MRR"]
        (1.0, 1.0)
    """
    ks = _check_ks(ks)
    ranks = retrieval_ranks(
        image_embeddings,
        text_embeddings,
        image_ids=image_ids,
        text_groups=text_groups,
        ties=ties,
        chunk_size=chunk_size,
        device=device,
        normalize=normalize,
    )

    metrics: dict[str, float] = {}
    for direction, direction_ranks in ranks.items():
        values = direction_ranks.numpy()
        for k in ks:
            metrics[f"{direction}_R@{k}"] = float(np.mean(values <= k))
        metrics[f"{direction}_mean_rank"] = float(np.mean(values))
        metrics[f"{direction}_median_rank"] = float(np.median(values))
        metrics[f"{direction}_MRR"] = float(np.mean(1.0 / values))
    return metrics
