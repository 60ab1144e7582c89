"""Book execution: wall time of every chapter in the ``ci`` and ``cpu`` profiles.

Each profile starts from an empty artifact cache (a fresh ``MEDGAP_CACHE``)
and executes the chapter notebooks of ``_toc.yml`` in order with nbclient.
Each notebook gets a new kernel whose working directory is the notebook's
folder. The kernels get the environment that ``scripts/build_book.py`` sets
(``MEDGAP_PROFILE``, ``PLOTLY_RENDERER=plotly_mimetype``, ``PYTHONHASHSEED=0``). A later chapter
therefore reuses what earlier ones trained, as in a fresh build of the book.
The time of a chapter includes starting its kernel. A chapter that fails is
recorded with its error, and the run goes on with the next one.

The full run takes as long as building the book twice (``ci``, then ``cpu``).

Usage: python bench/book_execution.py [--tiny] [--profiles ci cpu]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import harness

NAME = "book_execution"
# The benchmark page only reads the recorded results, this script's among them, so it is not timed.
SKIPPED_CHAPTERS = ("book/benchmarks",)
# Seconds per cell, as in _config.yml: the longest cells train a model in the cpu profile.
CELL_TIMEOUT = 1200
# Budgets of the whole book on 2 cores: the cpu profile's sizes are chosen for 20 minutes, the ci profile's for 8.
BOOK_BUDGET_SECONDS = {"ci": 8 * 60, "cpu": 20 * 60}


def toc_notebooks() -> list[Path]:
    """Return the chapter notebooks named in ``_toc.yml`` in reading order, without Markdown pages and the benchmark page."""
    import yaml

    toc = yaml.safe_load((harness.ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            names.append(chapter["file"])
            names.extend(section["file"] for section in chapter.get("sections", []))
    return [harness.ROOT / f"{name}.ipynb" for name in names
            if name not in SKIPPED_CHAPTERS and (harness.ROOT / f"{name}.ipynb").is_file()]


def execute(path: Path) -> dict:
    """Execute one notebook in a new kernel and return its wall time and status."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    status, error = "ok", None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as failure:
        status, error = "failed", str(failure)[-2000:]
    seconds = time.perf_counter() - started
    chapter = path.relative_to(harness.ROOT).with_suffix("").as_posix()
    print(f"  {chapter}: {seconds:.1f} s ({status})")
    return {"chapter": chapter, "seconds": seconds, "status": status, "error": error}


def execute_profile(profile: str, notebooks: list[Path]) -> dict:
    """Execute ``notebooks`` in order under ``profile`` with a fresh artifact cache."""
    cache = Path(tempfile.mkdtemp(prefix=f"medgap-bench-cache-{profile}-"))
    saved = {key: os.environ.get(key) for key in ("MEDGAP_PROFILE", "MEDGAP_CACHE", "PLOTLY_RENDERER",
                                                  "PYTHONHASHSEED")}
    # The kernels inherit this process's environment.
    os.environ.update(MEDGAP_PROFILE=profile, MEDGAP_CACHE=str(cache), PLOTLY_RENDERER="plotly_mimetype",
                      PYTHONHASHSEED="0")
    print(f"profile {profile}:")
    try:
        chapters = [execute(path) for path in notebooks]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(cache, ignore_errors=True)
    total = sum(chapter["seconds"] for chapter in chapters)
    print(f"  total: {total:.1f} s")
    return {"profile": profile, "chapters": chapters, "total_seconds": total,
            "failed": [chapter["chapter"] for chapter in chapters if chapter["status"] != "ok"]}


def main() -> int:
    parser = harness.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", choices=["ci", "cpu", "gpu", "paper"], default=None,
                        help="run-time profiles to execute the book in (default: ci cpu; tiny: ci)")
    args = parser.parse_args()
    started, load_at_start = harness.start(args)
    if args.threads is not None:
        # The kernels are separate processes, so the thread count reaches them through the environment.
        os.environ["OMP_NUM_THREADS"] = str(args.threads)

    if args.tiny:
        notebooks = [harness.ROOT / "book" / "_template.ipynb"]
        profiles = args.profiles or ["ci"]
    else:
        notebooks = toc_notebooks()
        profiles = args.profiles or ["ci", "cpu"]
    runs = [execute_profile(profile, notebooks) for profile in profiles]

    goals = []
    for run in runs:
        if run["profile"] in BOOK_BUDGET_SECONDS and not args.tiny:
            goals.append(harness.goal(f"whole {run['profile']} book", run["total_seconds"] / 60,
                                      BOOK_BUDGET_SECONDS[run["profile"]] / 60, "max", unit=" min"))
        goals.append(harness.goal(f"chapters that failed ({run['profile']})", len(run["failed"]), 0, "max", unit=""))
    settings = {"profiles": profiles, "notebooks": [path.relative_to(harness.ROOT).as_posix() for path in notebooks],
                "cell_timeout_seconds": CELL_TIMEOUT}
    harness.write_result(NAME, args, started, load_at_start, settings, {"profiles": runs}, goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
