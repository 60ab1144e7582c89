"""Tables and plotly figures of the recorded benchmark results, for the book's benchmark page.

Every function takes the parsed result records (see :func:`load_results`) and
computes nothing heavier than a ratio, so the page builds in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

# Names of the result files, in the order of the page.
BENCHMARKS = ("retrieval", "training", "input_pipeline", "book_execution", "data_parallel", "threads")
GIB = 2**30
MIB = 2**20


def load_results(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Return the result records in ``directory`` keyed by benchmark name, in page order.

    Raises:
        FileNotFoundError: if ``directory`` contains no result file.
    """
    directory = Path(directory)
    records = {}
    for path in sorted(directory.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        records[record["benchmark"]] = record
    if not records:
        raise FileNotFoundError(f"No benchmark results in {directory}; record them with "
                                "`.venv/bin/python bench/run_all.py`.")
    order = {name: index for index, name in enumerate(BENCHMARKS)}
    return dict(sorted(records.items(), key=lambda item: order.get(item[0], len(order))))


def machine_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Return one row per result file: when and on what it ran, and how busy the machine was."""
    rows = []
    for name, record in results.items():
        machine = record["machine"]
        rows.append({
            "benchmark": name,
            "date (UTC)": record["date"].replace("T", " ")[:16],
            "CPU": machine["cpu_model"],
            "cores": machine["usable_cores"],
            "memory (GiB)": machine["memory_gib"],
            "torch": machine["torch"],
            "threads": machine["torch_threads"],
            "OMP_WAIT_POLICY": machine.get("omp_wait_policy") or "unset",
            "GPU": machine["gpu"] or "none",
            "load at start / end": f"{_first_load(record['load_average_start'])} / "
                                   f"{_first_load(record['load_average_end'])}",
            "run time (min)": round(record["wall_seconds"] / 60, 1),
            "command": record["command"],
        })
    return pd.DataFrame(rows).set_index("benchmark")


def _first_load(load: list[float] | None) -> str:
    return "n/a" if not load else f"{load[0]:.1f}"


def goals_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Return every goal with its measured value and whether it was met."""
    rows = []
    for name, record in results.items():
        for goal in record["goals"]:
            relation = "≤" if goal["direction"] == "max" else "≥"
            rows.append({
                "benchmark": name,
                "measure": goal["name"],
                "measured": f"{goal['measured']:.3g}{goal['unit']}",
                "goal": f"{relation} {goal['target']:g}{goal['unit']}",
                "met": "yes" if goal["met"] else "MISSED",
            })
    return pd.DataFrame(rows)


def missed_goals(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the goal records that were not met, each with its benchmark name added."""
    return [{"benchmark": name, **goal} for name, record in results.items() for goal in record["goals"]
            if not goal["met"]]


def _median(values: list[float]) -> float:
    return float(pd.Series(values).median())


def retrieval_table(record: dict[str, Any]) -> pd.DataFrame:
    """Return per N: median seconds of retrieval and of the products, their ratios, peak memory and recall."""
    rows = []
    for size in record["measurements"]["sizes"]:
        seconds = size["seconds"]
        rows.append({
            "N": size["size"],
            "retrieval_metrics (s)": round(_median(seconds["retrieval_metrics"]), 2),
            "tiled product (s)": round(_median(seconds["tiled_product"]), 2),
            "dense product (s)": round(_median(seconds["dense_product"]), 2) if seconds["dense_product"] else None,
            "÷ tiled product": round(size["ratio_to_tiled_product"], 2),
            "÷ dense product": (round(size["ratio_to_dense_product"], 2)
                                if size["ratio_to_dense_product"] is not None else None),
            "peak extra memory (MiB)": (round(size["peak_extra_bytes"] / MIB)
                                        if size["peak_extra_bytes"] is not None else None),
            "image→text R@1": round(size["recall"]["image_to_text_R@1"], 3),
            "text→image R@1": round(size["recall"]["text_to_image_R@1"], 3),
        })
    return pd.DataFrame(rows).set_index("N")


def retrieval_figure(record: dict[str, Any]) -> go.Figure:
    """Return bars of retrieval time over the product's time per N, with the goal as a line."""
    sizes = record["measurements"]["sizes"]
    labels = [f"{size['size']:,}" for size in sizes]
    figure = go.Figure()
    figure.add_bar(name="÷ tiled product", x=labels, y=[size["ratio_to_tiled_product"] for size in sizes])
    figure.add_bar(name="÷ dense product", x=labels, y=[size["ratio_to_dense_product"] for size in sizes])
    figure.add_hline(y=1.5, line_dash="dash", annotation_text="goal ≤ 1.5×")
    figure.add_hline(y=1.0, line_dash="dot", annotation_text="the product itself")
    figure.update_layout(title="Exact Recall@K ranking time relative to the N × N matrix product",
                         xaxis_title="pairs N (D = 512)", yaxis_title="time ratio", barmode="group", height=380)
    return figure


def sort_table(record: dict[str, Any]) -> pd.DataFrame:
    """Return the rank checks against the full sort: data, tie rule, queries with ties, mismatched ranks."""
    checks = record["measurements"]["sort"]["checks"]
    return pd.DataFrame(checks).rename(columns={"data": "embeddings", "ties": "tie rule",
                                                "queries_with_ties": "image queries with an exact tie",
                                                "mismatched_ranks": "ranks that differ"})


def operators_table(record: dict[str, Any]) -> pd.DataFrame:
    """Return the torch profiler's operators with the most CPU time in one retrieval call."""
    rows = [{"operator": op["operator"], "calls": op["calls"], "CPU time (s)": round(op["self_cpu_seconds"], 3),
             "share": f"{op['share']:.0%}"} for op in record["measurements"]["profile"]["operators"]]
    return pd.DataFrame(rows).set_index("operator")


def training_table(record: dict[str, Any]) -> pd.DataFrame:
    """Return seconds per epoch of fit, the hand-written loop and heads-only fit (all epochs but the first)."""
    measurements = record["measurements"]
    steps = measurements["steps_per_epoch"]
    loop = measurements["loop_epoch_seconds_before_fit"][1:] + measurements["loop_epoch_seconds_after_fit"][1:]
    rows = [
        ("fit, end-to-end", measurements["fit_epoch_seconds"][1:]),
        ("hand-written loop, end-to-end", loop),
        ("fit, heads-only on cached features", measurements["heads_only_epoch_seconds"][1:]),
    ]
    table = pd.DataFrame([{"run": run, "epochs timed": len(values), "mean s per epoch": sum(values) / len(values),
                           "mean s per step": sum(values) / len(values) / steps} for run, values in rows])
    return table.set_index("run").round(4)


def training_figure(record: dict[str, Any]) -> go.Figure:
    """Return every timed epoch of the three runs on a log scale."""
    measurements = record["measurements"]
    runs = {
        "fit, end-to-end": measurements["fit_epoch_seconds"],
        "hand-written loop (before fit)": measurements["loop_epoch_seconds_before_fit"],
        "hand-written loop (after fit)": measurements["loop_epoch_seconds_after_fit"],
        "fit, heads-only": measurements["heads_only_epoch_seconds"],
    }
    figure = go.Figure()
    for name, seconds in runs.items():
        figure.add_scatter(name=name, x=list(range(1, len(seconds) + 1)), y=seconds, mode="markers+lines")
    figure.update_layout(title="Seconds per training epoch (epoch 1 includes warm-up and is not used)",
                         xaxis_title="epoch", yaxis_title="seconds", yaxis_type="log", height=380)
    return figure


def input_pipeline_figure(record: dict[str, Any]) -> go.Figure:
    """Return bars of pairs per second: generation, loading variants, the image transform, the tokenizer, training."""
    measurements = record["measurements"]
    bars = {"phantom generation": measurements["generation"]["pairs_per_second"]}
    for loading in measurements["loading"]:
        label = f"loading, {loading['num_workers']} workers" + (", augmented" if loading["augment"] else "")
        bars[label] = loading["pairs_per_second"]
    bars["image transform alone"] = measurements["parts"]["image_transform_pairs_per_second"]
    bars["tokenizer alone"] = measurements["parts"]["tokenizer_pairs_per_second"]
    bars["training consumes"] = measurements["consumption"]["pairs_per_second"]
    figure = go.Figure(go.Bar(x=list(bars.values()), y=list(bars), orientation="h"))
    figure.update_layout(title="Input pipeline throughput", xaxis_title="pairs per second (log scale)",
                         xaxis_type="log", height=380, yaxis_autorange="reversed")
    return figure


def book_table(record: dict[str, Any]) -> pd.DataFrame:
    """Return the book's run-time table: seconds per chapter (rows) and profile (columns), with a total row."""
    columns = {}
    for run in record["measurements"]["profiles"]:
        times = {chapter["chapter"]: round(chapter["seconds"], 1) for chapter in run["chapters"]}
        times["whole book"] = round(run["total_seconds"], 1)
        columns[f"{run['profile']} (s)"] = times
    return pd.DataFrame(columns)


def book_figure(record: dict[str, Any]) -> go.Figure:
    """Return grouped bars of minutes per chapter, one group per profile."""
    figure = go.Figure()
    for run in record["measurements"]["profiles"]:
        figure.add_bar(name=run["profile"], x=[chapter["chapter"] for chapter in run["chapters"]],
                       y=[chapter["seconds"] / 60 for chapter in run["chapters"]])
    figure.update_layout(title="Chapter execution time from an empty cache", yaxis_title="minutes",
                         barmode="group", height=380)
    return figure


def data_parallel_table(record: dict[str, Any]) -> pd.DataFrame:
    """Return throughput per layout (processes x threads per process)."""
    rows = [{"layout": f"{run['processes']} process(es) × {run['threads_per_process']} thread(s)",
             "s per epoch (timed epochs)": ", ".join(f"{s:.1f}" for s in run["epoch_seconds"][1:] or run["epoch_seconds"]),
             "pairs per second": round(run["pairs_per_second"], 1)} for run in record["measurements"]["layouts"]]
    return pd.DataFrame(rows).set_index("layout")


def data_parallel_figure(record: dict[str, Any]) -> go.Figure:
    """Return bars of global training throughput per layout."""
    table = data_parallel_table(record)
    figure = go.Figure(go.Bar(x=list(table.index), y=table["pairs per second"]))
    figure.update_layout(title="End-to-end training throughput at the same global batch",
                         yaxis_title="pairs per second", height=360)
    return figure


def threads_table(record: dict[str, Any]) -> pd.DataFrame:
    """Return the median step time per thread setting with the load average before it ran."""
    rows = [{"threads": setting["threads"], "OMP_WAIT_POLICY": setting["omp_wait_policy"] or "unset (default)",
             "load before": _first_load(setting["load_average_before"]),
             "median s per step": round(setting["median_step_seconds"], 3)}
            for setting in record["measurements"]["settings"]]
    return pd.DataFrame(rows)
