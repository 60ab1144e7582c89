"""Retrieval at scale: exact Recall@K against the matrix product it needs and against a full sort.

For each N, ``medgap_utils.metrics.retrieval_metrics`` ranks N image and N
text embeddings (D = 512) both ways. Its time is compared with

- one dense N x N product ``images @ texts.T``, where N x N float32 fits in
  ``--dense-limit-gib`` of memory (10k: 0.4 GB; 50k: 10 GB; 100k: 40 GB);
- the same product computed in 4096 x 4096 tiles into one reused buffer,
  which is how an N x N product that does not fit in memory is computed.
  Both compute all N^2 scores, which retrieval must do, so they are its floor.

Its peak extra resident memory is measured around the call. At one N
(``--sort-size``), a straightforward implementation sorts every row of the
full score matrix with a stable sort. It is timed against the tiled ranks,
and both must give identical ranks under both tie rules, on Gaussian
embeddings and on embeddings whose scores tie exactly.

Usage: python bench/retrieval.py [--tiny] [--sizes 10000 50000 100000]
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

import harness

NAME = "retrieval"
TILE = 4096
KS = (1, 5, 10)
# Image rows are text rows plus Gaussian noise of this norm, which puts
# image-to-text Recall@1 at 10k pairs near 0.5 rather than at 0 or 1.
NOISE = 5.5
# Tie-stress rows have 256 non-zero entries of +-1/16 (unit norm exactly), so
# every score is a multiple of 1/256 and is computed exactly in any order.
# An image row is its text row with this many signs flipped, which puts
# the correct score (256 - 2 * 110) / 256 among exactly tied wrong scores.
DYADIC_NONZERO = 256
DYADIC_FLIPS = 110
CHUNK_ROWS = 8192


def gaussian_pairs(count: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return unit-norm (count, dim) image and text embeddings, built in chunks to keep the memory peak low."""
    generator = torch.Generator().manual_seed(seed)
    images, texts = torch.empty(count, dim), torch.empty(count, dim)
    for start in range(0, count, CHUNK_ROWS):
        stop = min(count, start + CHUNK_ROWS)
        text = F.normalize(torch.randn(stop - start, dim, generator=generator), dim=1)
        noise = torch.randn(stop - start, dim, generator=generator) * (NOISE / math.sqrt(dim))
        texts[start:stop] = text
        images[start:stop] = F.normalize(text + noise, dim=1)
    return images, texts


def tied_pairs(count: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return unit-norm embeddings whose float32 scores are exact multiples of 1/256, so many tie exactly."""
    if dim < DYADIC_NONZERO:
        raise ValueError(f"tied_pairs needs dim >= {DYADIC_NONZERO}, got {dim}")
    generator = torch.Generator().manual_seed(seed)
    support = torch.rand(count, dim, generator=generator).argsort(dim=1)[:, :DYADIC_NONZERO]
    signs = torch.randint(0, 2, (count, DYADIC_NONZERO), generator=generator) * 2.0 - 1.0
    texts = torch.zeros(count, dim).scatter_(1, support, signs / math.sqrt(DYADIC_NONZERO))
    flipped = torch.rand(count, DYADIC_NONZERO, generator=generator).argsort(dim=1)[:, :DYADIC_FLIPS]
    image_signs = signs.scatter(1, flipped, -signs.gather(1, flipped))
    images = torch.zeros(count, dim).scatter_(1, support, image_signs / math.sqrt(DYADIC_NONZERO))
    return images, texts


def tiled_product(images: torch.Tensor, texts: torch.Tensor, tile: int = TILE) -> None:
    """Compute every score of ``images @ texts.T`` tile by tile into one reused buffer."""
    buffer = torch.empty(tile * tile)
    for row in range(0, images.shape[0], tile):
        image_block = images[row:row + tile]
        for column in range(0, texts.shape[0], tile):
            text_block = texts[column:column + tile]
            out = buffer[: image_block.shape[0] * text_block.shape[0]].view(image_block.shape[0], -1)
            torch.mm(image_block, text_block.T, out=out)


def sorted_ranks(scores: torch.Tensor, ties: str) -> torch.Tensor:
    """Return the 1-based rank of column i in row i of ``scores`` by sorting every row.

    A stable sort keeps equal scores in column order. Moving the correct
    column to the front (``"optimistic"``) or to the back (``"pessimistic"``)
    of each row before sorting therefore ranks it before or after every
    wrong item with the same score, the tie rules of ``retrieval_ranks``.
    """
    count = scores.shape[0]
    rows = torch.arange(count)[:, None]
    others = torch.arange(count - 1)[None, :]
    others = others + (others >= rows)
    if ties == "optimistic":
        columns, correct_position = torch.cat([rows, others], dim=1), 0
    else:
        columns, correct_position = torch.cat([others, rows], dim=1), count - 1
    order = torch.argsort(scores.gather(1, columns), dim=1, descending=True, stable=True)
    return (order == correct_position).nonzero()[:, 1] + 1


def ranks_by_sorting(images: torch.Tensor, texts: torch.Tensor, ties: str) -> dict[str, torch.Tensor]:
    """Return both directions' ranks from a full score matrix sorted row by row."""
    scores = images @ texts.T
    return {"image_to_text": sorted_ranks(scores, ties), "text_to_image": sorted_ranks(scores.T.contiguous(), ties)}


def queries_with_ties(images: torch.Tensor, texts: torch.Tensor) -> int:
    """Return how many image queries have a wrong caption scoring exactly as high as the correct one."""
    scores = images @ texts.T
    correct = scores.diagonal().clone()
    scores.fill_diagonal_(-math.inf)
    return int((scores == correct[:, None]).any(dim=1).sum())


def compare_with_sort(count: int, dim: int, repeats: int, seed: int) -> dict:
    """Time the sort baseline against ``retrieval_ranks`` and count rank mismatches under both tie rules."""
    from medgap_utils.metrics import retrieval_ranks

    report: dict = {"size": count, "checks": []}
    for data_name, make in (("gaussian", gaussian_pairs), ("tied", tied_pairs)):
        images, texts = make(count, dim, seed)
        for ties in ("optimistic", "pessimistic"):
            tiled = retrieval_ranks(images, texts, ties=ties)
            sort = ranks_by_sorting(images, texts, ties)
            mismatches = sum(int((tiled[d] != sort[d]).sum()) for d in tiled)
            report["checks"].append({"data": data_name, "ties": ties, "mismatched_ranks": mismatches,
                                     "queries_with_ties": queries_with_ties(images, texts)})

    images, texts = gaussian_pairs(count, dim, seed)
    sort_seconds, sort_times = harness.median_seconds(lambda: ranks_by_sorting(images, texts, "optimistic"),
                                                      repeats)
    tiled_seconds, tiled_times = harness.median_seconds(lambda: retrieval_ranks(images, texts), repeats)
    report.update(sort_seconds=sort_times, retrieval_ranks_seconds=tiled_times,
                  speedup=sort_seconds / tiled_seconds)
    return report


def measure_size(count: int, dim: int, repeats: int, dense_limit_bytes: float, seed: int) -> dict:
    """Time retrieval_metrics, the tiled product and (if it fits) the dense product at one N, interleaved."""
    from medgap_utils.metrics import retrieval_metrics

    images, texts = gaussian_pairs(count, dim, seed)
    dense = count * count * 4 <= dense_limit_bytes
    times: dict[str, list[float]] = {"retrieval_metrics": [], "tiled_product": [], "dense_product": []}
    peaks: list[int] = []
    metrics: dict = {}
    for _ in range(repeats):
        started = time.perf_counter()
        tiled_product(images, texts)
        times["tiled_product"].append(time.perf_counter() - started)

        with harness.PeakMemory() as memory:
            started = time.perf_counter()
            metrics = retrieval_metrics(images, texts, ks=KS)
            times["retrieval_metrics"].append(time.perf_counter() - started)
        if memory.extra_bytes is not None:
            peaks.append(memory.extra_bytes)

        if dense:
            started = time.perf_counter()
            product = images @ texts.T
            times["dense_product"].append(time.perf_counter() - started)
            del product

    median = {key: sorted(values)[len(values) // 2] for key, values in times.items() if values}
    result = {
        "size": count,
        "seconds": times,
        "peak_extra_bytes": max(peaks) if peaks else None,
        "ratio_to_tiled_product": median["retrieval_metrics"] / median["tiled_product"],
        "ratio_to_dense_product": median["retrieval_metrics"] / median["dense_product"] if dense else None,
        "recall": {key: value for key, value in metrics.items() if "_R@" in key},
    }
    print(f"N={count}: retrieval {median['retrieval_metrics']:.2f} s, tiled product {median['tiled_product']:.2f} s"
          + (f", dense product {median['dense_product']:.2f} s" if dense else "")
          + f", peak extra memory {result['peak_extra_bytes'] / 2**20 if peaks else float('nan'):.0f} MiB")
    return result


def profile_operations(count: int, dim: int, seed: int, top: int = 8) -> list[dict]:
    """Return the operators that take the most CPU time in one retrieval_metrics call (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from medgap_utils.metrics import retrieval_metrics

    images, texts = gaussian_pairs(count, dim, seed)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        retrieval_metrics(images, texts, ks=KS)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    return [{"operator": event.key, "self_cpu_seconds": event.self_cpu_time_total / 1e6,
             "share": event.self_cpu_time_total / total, "calls": event.count} for event in events[:top]]


def main() -> int:
    parser = harness.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="numbers of pairs N (default: 10000 50000 100000; tiny: 1000 3000)")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension D (default: 512)")
    parser.add_argument("--sort-size", type=int, default=None,
                        help="N of the comparison with the full sort (default: 10000; tiny: 1000)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per N; the median is used (default: 3, or 1 above 50k; tiny: 1)")
    parser.add_argument("--dense-limit-gib", type=float, default=4.0,
                        help="time the dense product only where its N x N float32 output fits in this many GiB "
                             "(default: 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic embeddings (default: 0)")
    args = parser.parse_args()
    sizes = args.sizes or ([1000, 3000] if args.tiny else [10_000, 50_000, 100_000])
    sort_size = args.sort_size or (1000 if args.tiny else 10_000)
    started, load_at_start = harness.start(args)

    torch.set_grad_enabled(False)
    # A first call loads the kernels, so no timed call pays for it.
    from medgap_utils.metrics import retrieval_metrics
    retrieval_metrics(*gaussian_pairs(512, args.dim, args.seed))

    per_size = []
    for count in sizes:
        repeats = args.repeats or (1 if args.tiny or count > 50_000 else 3)
        per_size.append(measure_size(count, args.dim, repeats, args.dense_limit_gib * 2**30, args.seed))
    sort = compare_with_sort(sort_size, args.dim, args.repeats or (1 if args.tiny else 2), args.seed)
    print(f"N={sort_size}: retrieval_ranks is {sort['speedup']:.1f}x faster than the full sort")
    profile = profile_operations(sizes[0], args.dim, args.seed)

    goals = []
    for result in per_size:
        if result["ratio_to_dense_product"] is not None:
            goals.append(harness.goal(f"time / dense product, N={result['size']}",
                                      result["ratio_to_dense_product"], 1.5, "max"))
        goals.append(harness.goal(f"time / tiled product, N={result['size']}",
                                  result["ratio_to_tiled_product"], 1.5, "max"))
    largest = per_size[-1]
    if largest["peak_extra_bytes"] is not None:
        goals.append(harness.goal(f"peak extra memory, N={largest['size']}",
                                  largest["peak_extra_bytes"] / 2**30, 1.0, "max", unit=" GiB"))
    goals.append(harness.goal(f"speedup over full sort, N={sort_size}", sort["speedup"], 10.0, "min"))
    mismatches = sum(check["mismatched_ranks"] for check in sort["checks"])
    goals.append(harness.goal("ranks that differ from the full sort", mismatches, 0, "max", unit=""))

    settings = {"sizes": sizes, "dim": args.dim, "sort_size": sort_size, "tile": TILE, "noise": NOISE,
                "dense_limit_gib": args.dense_limit_gib, "seed": args.seed, "ks": list(KS)}
    measurements = {"sizes": per_size, "sort": sort, "profile": {"size": sizes[0], "operators": profile}}
    harness.write_result(NAME, args, started, load_at_start, settings, measurements, goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
