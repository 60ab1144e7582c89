"""The benchmark scripts in bench/ run in their tiny mode and write complete result files.

Each script runs once, as a separate process, with ``--tiny`` and one torch
thread (so that other processes on the machine cannot slow the OpenMP
threads to a crawl), into a temporary folder and a temporary artifact cache.
Only the structure of the results and the exactness of the ranks are
checked: tiny timings mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPTS = ("retrieval", "training", "input_pipeline", "data_parallel", "threads", "book_execution")
MACHINE_FIELDS = {"cpu_model", "logical_cores", "usable_cores", "memory_gib", "torch", "torch_threads"}


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bench-results")
    env = dict(os.environ, MEDGAP_CACHE=str(tmp_path_factory.mktemp("bench-cache")))
    command = [sys.executable, str(BENCH / "run_all.py"), "--tiny", "--threads", "1", "--output-dir", str(directory)]
    completed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return directory


def read(results_dir: Path, name: str) -> dict:
    return json.loads((results_dir / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_records_machine_and_command(results_dir, name):
    record = read(results_dir, name)
    assert record["benchmark"] == name
    assert record["tiny"] is True
    assert record["command"].startswith(f"python bench/{name}.py --tiny")
    assert MACHINE_FIELDS <= set(record["machine"])
    assert record["machine"]["torch_threads"] == 1
    assert record["date"]
    assert record["measurements"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_goals_are_complete(results_dir, name):
    for goal in read(results_dir, name)["goals"]:
        assert {"name", "measured", "target", "direction", "unit", "met"} <= set(goal), goal
        assert goal["direction"] in ("max", "min")


def test_retrieval_ranks_match_full_sort(results_dir):
    checks = read(results_dir, "retrieval")["measurements"]["sort"]["checks"]
    assert {(check["data"], check["ties"]) for check in checks} == {
        ("gaussian", "optimistic"), ("gaussian", "pessimistic"), ("tied", "optimistic"), ("tied", "pessimistic")}
    for check in checks:
        assert check["mismatched_ranks"] == 0, check


def test_retrieval_tied_data_has_exact_ties(results_dir):
    checks = read(results_dir, "retrieval")["measurements"]["sort"]["checks"]
    tied = [check for check in checks if check["data"] == "tied"]
    assert all(check["queries_with_ties"] > 0 for check in tied)


def test_book_execution_runs_template(results_dir):
    run = read(results_dir, "book_execution")["measurements"]["profiles"][0]
    assert run["profile"] == "ci"
    assert [chapter["chapter"] for chapter in run["chapters"]] == ["book/_template"]
    assert run["failed"] == []


def test_data_parallel_uses_two_processes(results_dir):
    layouts = read(results_dir, "data_parallel")["measurements"]["layouts"]
    assert [layout["processes"] for layout in layouts] == [1, 2]
    assert all(layout["pairs_per_second"] > 0 for layout in layouts)


def test_report_builds_every_table_and_figure(results_dir):
    sys.path.insert(0, str(BENCH))
    try:
        import report
    finally:
        sys.path.remove(str(BENCH))

    results = report.load_results(results_dir)
    assert list(results) == list(report.BENCHMARKS)
    assert len(report.machine_table(results)) == len(SCRIPTS)
    assert len(report.goals_table(results)) == sum(len(record["goals"]) for record in results.values())
    assert len(report.retrieval_table(results["retrieval"])) == 2
    assert len(report.book_table(results["book_execution"])) == 2
    for figure in (report.retrieval_figure(results["retrieval"]), report.training_figure(results["training"]),
                   report.input_pipeline_figure(results["input_pipeline"]),
                   report.book_figure(results["book_execution"]),
                   report.data_parallel_figure(results["data_parallel"])):
        assert len(figure.data) >= 1
    for table in (report.sort_table(results["retrieval"]), report.operators_table(results["retrieval"]),
                  report.training_table(results["training"]), report.threads_table(results["threads"]),
                  report.data_parallel_table(results["data_parallel"])):
        assert len(table) >= 1


def test_load_results_rejects_empty_folder(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        import report
    finally:
        sys.path.remove(str(BENCH))

    with pytest.raises(FileNotFoundError, match="run_all.py"):
        report.load_results(tmp_path)
