"""Shared parts of the benchmark scripts: command line, machine description, timing, memory, result files.

Every script measures ratios within one run, because absolute times on a
shared machine vary from run to run. A result file records the date, the
machine, the command, the raw measurements, and each goal with its measured
value and whether it was met.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# Tiny runs check that the scripts still work. They never overwrite the recorded results.
TINY_RESULTS_DIR = Path(tempfile.gettempdir()) / "medgap-bench-tiny"


def make_parser(description: str) -> argparse.ArgumentParser:
    """Return a parser with the options that every benchmark script takes (``--tiny``, ``--output-dir``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true",
                        help="run at a size that takes seconds, to check that the script works; "
                             "the numbers mean nothing")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help=f"folder for the result JSON (default: {RESULTS_DIR.relative_to(ROOT)}, "
                             f"or {TINY_RESULTS_DIR} with --tiny)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per usable core)")
    return parser


def start(args: argparse.Namespace) -> tuple[float, list[float] | None]:
    """Apply ``--threads`` and return the start time (``time.perf_counter()``) and the load average."""
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return time.perf_counter(), load_average()


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else platform.machine()


def _memory_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, flags=re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def load_average() -> list[float] | None:
    """Return the 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_description() -> dict[str, Any]:
    """Describe the machine: CPU model, cores, memory, Python, torch and its thread counts, GPU."""
    import torch

    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    description = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # Under load from other processes, spinning OpenMP threads slow small operators down (see threads.py).
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    return description


def median_seconds(function: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Call ``function`` ``repeats`` times and return the median and every wall time, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def training_step_seconds(model: Any, loss_function: Any, optimizer: Any, batches: list[tuple[Any, Any]]) -> list[float]:
    """Train one step on each ``(images, texts)`` batch and return the wall time of each step, in seconds.

    A first step on ``batches[0]`` warms up the kernels and allocator and is not timed.
    """
    times = []
    for images, texts in [batches[0], *batches]:
        started = time.perf_counter()
        image_embeddings, text_embeddings = model(images, texts)
        loss = loss_function(image_embeddings, text_embeddings, model.logit_scale.exp()).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times[1:]


class PeakMemory:
    """Peak resident memory above the level at entry, in bytes, for the code inside a ``with`` block.

    Linux keeps a process's peak resident set size (``VmHWM``) and resets it
    to the current size when ``5`` is written to ``/proc/self/clear_refs``,
    so the peak of one block is measured in the running process. Tensor
    memory counts here, unlike in ``tracemalloc``, which traces only
    Python's own allocator and not torch's C allocations.

    Attributes:
        extra_bytes: the peak minus the resident size at entry (None where
            ``/proc`` is not available).
    """

    def __init__(self) -> None:
        self.extra_bytes: int | None = None
        self._start: int | None = None

    @staticmethod
    def _status_kib(field: str) -> int | None:
        try:
            text = Path("/proc/self/status").read_text(encoding="utf-8")
        except OSError:
            return None
        match = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.MULTILINE)
        return int(match.group(1)) if match else None

    def __enter__(self) -> PeakMemory:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
        except OSError:
            return self
        self._start = self._status_kib("VmRSS")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        peak = self._status_kib("VmHWM")
        if self._start is not None and peak is not None:
            self.extra_bytes = max(0, peak - self._start) * 1024


def goal(name: str, measured: float, target: float, direction: str, unit: str = "x") -> dict[str, Any]:
    """Return one goal record: ``direction`` is ``"max"`` (measured <= target) or ``"min"`` (measured >= target)."""
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
    met = measured <= target if direction == "max" else measured >= target
    return {"name": name, "measured": measured, "target": target, "direction": direction, "unit": unit,
            "met": bool(met)}


def print_goals(goals: list[dict[str, Any]]) -> None:
    """Print each goal as one line: name, measured value, target, met or missed."""
    for record in goals:
        relation = "<=" if record["direction"] == "max" else ">="
        status = "met" if record["met"] else "MISSED"
        print(f"  {record['name']}: {record['measured']:.3g}{record['unit']} "
              f"(goal {relation} {record['target']:g}{record['unit']}): {status}")


def write_result(name: str, args: argparse.Namespace, started: float, load_at_start: list[float] | None,
                 settings: dict[str, Any], measurements: dict[str, Any],
                 goals: list[dict[str, Any]]) -> Path:
    """Write ``<output-dir>/<name>.json`` atomically and return its path.

    Args:
        name: the benchmark's name, which is also the file name.
        args: the parsed command line (``tiny`` and ``output_dir`` are read).
        started: ``time.perf_counter()`` at the start of the run.
        load_at_start: :func:`load_average` at the start of the run.
        settings: the sizes and options the run used.
        measurements: the raw numbers (seconds, bytes, counts).
        goals: records made by :func:`goal`.
    """
    from medgap_utils.io import write_json_atomic

    output_dir = args.output_dir or (TINY_RESULTS_DIR if args.tiny else RESULTS_DIR)
    script = Path(sys.argv[0]).resolve()
    try:
        script_name = script.relative_to(ROOT).as_posix()
    except ValueError:
        script_name = script.as_posix()
    record = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", script_name, *sys.argv[1:]]),
        "tiny": bool(args.tiny),
        "machine": machine_description(),
        "load_average_start": load_at_start,
        "load_average_end": load_average(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "settings": settings,
        "measurements": measurements,
        "goals": goals,
    }
    path = write_json_atomic(Path(output_dir) / f"{name}.json", record)
    print(f"wrote {path}")
    print_goals(goals)
    return path
