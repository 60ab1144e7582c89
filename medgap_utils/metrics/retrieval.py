"""Exact cross-modal retrieval ranks and recall, computed in chunks.

Similarity is the dot product (cosine for L2-normalized rows). The rank of a
query is 1 plus the number of wrong gallery items that score higher than its
best correct item, so ranks are exact without sorting anything: each chunk of
queries is scored against the whole gallery with one matrix product, the best
correct score of each query is read from that same product, and one
comparison pass counts the items above it. Peak extra memory is one
(chunk x gallery) score block and a boolean block of the same shape, so
100k x 100k pairs never materialize a full similarity matrix.

Several correct matches per query are supported. ``image_ids`` marks rows
that show the same image (several captions per image) and ``text_groups``
marks rows with the same caption text (duplicate captions). Each distinct
image and each distinct caption is one gallery item and one query, and text
group g is a correct match for image i when some row pairs them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ._validation import check_embeddings, check_labels, check_positive_int

logger = logging.getLogger(__name__)

TIE_RULES = ("optimistic", "pessimistic")

# Score-block sizes (chunk rows x gallery size), in float32 elements, when
# chunk_size is not given: 2**24 (64 MiB) on the CPU, 2**26 (256 MiB) on a GPU,
# where larger blocks amortize kernel launches.
_CPU_BLOCK_ELEMENTS = 2**24
_GPU_BLOCK_ELEMENTS = 2**26

# Rows that share an image id (or a text group) are expected to carry the same
# embedding; a larger difference is logged, because only the first row is used.
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


def _resolve_device(requested: Any, embeddings: torch.Tensor) -> torch.device:
    if requested is not None:
        return torch.device(requested)
    if embeddings.device.type != "cpu":
        return embeddings.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _query_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    pair_query: torch.Tensor,
    pair_gallery: torch.Tensor,
    ties: str,
    chunk_rows: int,
) -> torch.Tensor:
    """Return the 1-based rank of the best correct gallery item of every query.

    ``(pair_query[p], pair_gallery[p])`` lists each correct (query, gallery)
    combination once, sorted by query; every query has at least one.
    """
    query_count, gallery_count = queries.shape[0], gallery.shape[0]
    device = queries.device
    ranks = torch.empty(query_count, dtype=torch.int64, device=device)
    chunk_starts = torch.arange(0, query_count + chunk_rows, chunk_rows, device=device).clamp_(max=query_count)
    pair_bounds = torch.searchsorted(pair_query, chunk_starts).tolist()
    block_shape = (min(chunk_rows, query_count), gallery_count)
    score_block = torch.empty(block_shape, dtype=queries.dtype, device=device)
    above_block = torch.empty(block_shape, dtype=torch.bool, device=device)

    for chunk, start in enumerate(range(0, query_count, chunk_rows)):
        stop = min(start + chunk_rows, query_count)
        scores = torch.mm(queries[start:stop], gallery.T, out=score_block[: stop - start])

        # The best correct score comes from the same score block that is
        # counted below, so a correct item is never compared with a
        # differently rounded copy of its own score.
        low, high = pair_bounds[chunk], pair_bounds[chunk + 1]
        local_query = pair_query[low:high] - start
        pair_scores = scores[local_query, pair_gallery[low:high]]
        best = torch.full((stop - start,), -torch.inf, device=device)
        best.scatter_reduce_(0, local_query, pair_scores, reduce="amax")

        # Correct items never score above the best correct one, so only wrong
        # items are counted by the strict comparison.
        block = above_block[: stop - start]
        if ties == "optimistic":
            torch.gt(scores, best[:, None], out=block)
            ranks[start:stop] = block.sum(dim=1) + 1
        else:
            torch.ge(scores, best[:, None], out=block)
            tied_correct = torch.zeros(stop - start, dtype=torch.int64, device=device)
            tied_correct.scatter_add_(0, local_query, (pair_scores == best[local_query]).long())
            ranks[start:stop] = block.sum(dim=1) - tied_correct + 1

    return ranks.cpu()


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
        image_ids: optional length-N hashable ids; rows with the same id show
            the same image, which becomes one query and one gallery item
            (embedding taken from its first row).
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
        chunk_size: queries scored per matrix product; by default sized so
            that one score block holds 2**24 (CPU) or 2**26 (GPU) float32 values.
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
    unique_images = images[torch.from_numpy(image_first_rows).to(images.device)].to(target)
    unique_texts = texts[torch.from_numpy(text_first_rows).to(texts.device)].to(target)
    block_elements = _CPU_BLOCK_ELEMENTS if target.type == "cpu" else _GPU_BLOCK_ELEMENTS

    ranks = {}
    for direction, queries, gallery, query_codes, gallery_codes in (
        ("image_to_text", unique_images, unique_texts, pair_images, pair_texts),
        ("text_to_image", unique_texts, unique_images, pair_texts, pair_images),
    ):
        order = np.argsort(query_codes, kind="stable")
        chunk_rows = chunk_size if chunk_size is not None else max(1, block_elements // gallery.shape[0])
        with torch.no_grad():
            ranks[direction] = _query_ranks(
                queries,
                gallery,
                torch.from_numpy(query_codes[order]).to(target),
                torch.from_numpy(gallery_codes[order]).to(target),
                ties,
                chunk_rows,
            )
    return ranks


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
