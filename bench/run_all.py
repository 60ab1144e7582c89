"""Run every benchmark script, one process each, and record their results in bench/results/.

Usage: .venv/bin/python bench/run_all.py [--tiny] [--only NAME ...] [--skip NAME ...]
       [--threads N] [--output-dir DIR]

At full size the run takes about an hour on a 2-core machine, most of it
the book execution (the ``ci`` and then the ``cpu`` book) and retrieval at
100k pairs. ``--tiny`` runs every script at a size that takes seconds and
writes to a temporary folder, which is what the test suite does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# In order of run time; the book execution is the longest.
SCRIPTS = ("retrieval", "training", "input_pipeline", "data_parallel", "threads", "book_execution")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="run every script in its few-second mode")
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, default=None, help="run only these scripts")
    parser.add_argument("--skip", nargs="+", choices=SCRIPTS, default=(), help="do not run these scripts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, passed to every script")
    parser.add_argument("--output-dir", type=Path, default=None, help="folder for the result files")
    args = parser.parse_args()

    options = []
    if args.tiny:
        options.append("--tiny")
    if args.threads is not None:
        options += ["--threads", str(args.threads)]
    if args.output_dir is not None:
        options += ["--output-dir", str(args.output_dir)]

    failed = []
    for name in args.only or SCRIPTS:
        if name in args.skip:
            continue
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, str(BENCH_DIR / f"{name}.py"), *options]).returncode
        print(f"== {name}: exit code {code} after {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
