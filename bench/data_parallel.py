"""Data parallelism: two gloo processes against one at the same global batch.

``medgap_utils.training.fit`` trains the end-to-end CPU preset in three
layouts of the same cores, each started the way ``torchrun`` starts it
(``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the
environment, so fit joins a gloo process group):

- one process with one torch thread per usable core;
- one process with half of those threads (the per-process share below);
- two processes with half of the threads each, every process taking half of
  each global batch and gathering the embeddings for the loss.

Throughput is global pairs per second over the epochs after the first. The
throughput ratio compares two processes with one process on the same cores.
Scaling efficiency compares two processes with twice one process on half
of the cores (1.0 is perfect scaling).

Usage: python bench/data_parallel.py [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

NAME = "data_parallel"


def make_config(tiny: bool, epochs: int):
    """Return the end-to-end CPU preset (or a few-second version of it) with ``epochs`` epochs."""
    from medgap_utils.config import experiment_config

    if tiny:
        return experiment_config("clip", profile="ci", **{"train.epochs": epochs, "data.sizes": (32, 16, 16),
                                                          "train.batch_size": 16, "train.snapshot_size": 16})
    return experiment_config("clip", profile="cpu", **{"train.epochs": epochs})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_worker(args: argparse.Namespace) -> int:
    """Train as one process of the job described by the environment; rank 0 writes fit's history."""
    import torch

    from medgap_utils.data import load_phantom_corpus
    from medgap_utils.training import fit

    torch.set_num_threads(args.worker_threads)
    config = make_config(args.tiny, args.epochs)
    corpus = load_phantom_corpus(seed=config.data.seed, sizes=config.data.sizes, image_size=config.data.image_size)
    result = fit(config, corpus=corpus, run_dir=args.worker_run_dir, progress=False, device="cpu")
    if int(os.environ.get("RANK", "0")) == 0:
        Path(args.worker_output).write_text(json.dumps(result.history, default=str), encoding="utf-8")
    return 0


def run_layout(processes: int, threads: int, args: argparse.Namespace, scratch: Path) -> dict:
    """Start ``processes`` training processes with ``threads`` threads each and return their throughput."""
    config = make_config(args.tiny, args.epochs)
    name = f"{processes}x{threads}"
    output = scratch / f"{name}.json"
    port = free_port()
    workers = []
    for rank in range(processes):
        env = dict(os.environ, WORLD_SIZE=str(processes), RANK=str(rank), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=str(threads))
        command = [sys.executable, __file__, "--worker", "--epochs", str(args.epochs),
                   "--worker-threads", str(threads), "--worker-output", str(output),
                   "--worker-run-dir", str(scratch / name)]
        if args.tiny:
            command.append("--tiny")
        workers.append(subprocess.Popen(command, env=env))
    codes = [worker.wait() for worker in workers]
    if any(codes):
        raise RuntimeError(f"a training process of layout {name} failed with exit codes {codes}")

    history = json.loads(output.read_text(encoding="utf-8"))
    seconds = [record["seconds"] for record in history[1:]]
    timed = seconds[1:] or seconds
    pairs_per_epoch = (config.data.sizes[0] // config.train.batch_size) * config.train.batch_size
    throughput = pairs_per_epoch / statistics.mean(timed)
    print(f"{processes} process(es) x {threads} thread(s): {[round(s, 2) for s in seconds]} s per epoch, "
          f"{throughput:.1f} pairs/s")
    return {"processes": processes, "threads_per_process": threads, "epoch_seconds": seconds,
            "pairs_per_epoch": pairs_per_epoch, "pairs_per_second": throughput}


def main() -> int:
    parser = harness.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per layout; all but the first are timed (default: 3; tiny: 1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-run-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.epochs = args.epochs or (1 if args.tiny else 3)
    if args.worker:
        return run_worker(args)
    started, load_at_start = harness.start(args)

    import torch

    from medgap_utils.data import load_phantom_corpus

    cores = args.threads or torch.get_num_threads()
    half = max(1, cores // 2)
    config = make_config(args.tiny, args.epochs)
    # Generated once here, so the training processes only load it from the cache.
    load_phantom_corpus(seed=config.data.seed, sizes=config.data.sizes, image_size=config.data.image_size)

    layouts = [(1, cores), (1, half), (2, half)]
    if args.tiny:
        layouts = [(1, cores), (2, half)]
    with tempfile.TemporaryDirectory(prefix="medgap-bench-") as scratch:
        runs = [run_layout(processes, threads, args, Path(scratch)) for processes, threads in layouts]

    by_layout = {(run["processes"], run["threads_per_process"]): run["pairs_per_second"] for run in runs}
    measurements = {"layouts": runs,
                    "throughput_ratio": by_layout[(2, half)] / by_layout[(1, cores)]}
    if (1, half) in by_layout:
        measurements["scaling_efficiency"] = by_layout[(2, half)] / (2 * by_layout[(1, half)])
    print(f"two processes / one process on {cores} threads: {measurements['throughput_ratio']:.2f}x")
    settings = {"config": config.to_dict(), "epochs": args.epochs, "cores": cores, "backend": "gloo"}
    harness.write_result(NAME, args, started, load_at_start, settings, measurements, goals=[])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
