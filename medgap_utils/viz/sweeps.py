"""Figures of precomputed sweeps: metrics against a loss weight, the
temperature or the post-hoc shift along the gap.

Every value is computed before the figure is drawn, and sliders only switch
between stored traces or frames, so the figures work in the static book.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medgap_utils.viz import palette
from medgap_utils.viz._checks import check_choice, check_columns, to_table
from medgap_utils.viz.animation import frame_controls
from medgap_utils.viz.training import animated_map_figure, check_snapshots

# Axis titles (with units) for the swept parameters the book uses; any other
# column is titled by its name.
PARAMETER_TITLES = {
    "lambda_atp": "λ_ATP (weight of L_ATP)",
    "lambda_cu": "λ_CU (weight of L_CU)",
    "temperature": "temperature τ (unitless)",
    "shift": "shift λ (fraction of the gap)",
}


def _panels(metrics: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if isinstance(metrics, str):
        return {metrics: [metrics]}
    if isinstance(metrics, Mapping):
        panels = {str(title): [metrics[title]] if isinstance(metrics[title], str) else list(metrics[title])
                  for title in metrics}
    else:
        panels = {str(metric): [str(metric)] for metric in metrics}
    if not panels or not all(panels.values()):
        raise ValueError(f"metrics must name at least one column per panel, got {metrics!r}.")
    return panels


def _summary(frame: Any, by: list[str], metric: str) -> Any:
    """Return mean, std (0 for one row) and count of ``metric`` per ``by`` group, sorted."""
    grouped = frame.groupby(by, sort=True)[metric]
    summary = grouped.agg(["mean", "std", "count"]).reset_index()
    summary["std"] = summary["std"].fillna(0.0)
    return summary


def _log_axis(values: np.ndarray, log_x: bool | str) -> bool:
    if log_x != "auto":
        return bool(log_x)
    values = values[np.isfinite(values)]
    return bool(len(values) and values.min() > 0 and values.max() / values.min() >= 100)


def sweep_figure(
    table: Any,
    parameter: str,
    metrics: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    slider: str | None = None,
    log_x: bool | str = "auto",
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """Draw metrics against one swept parameter, one panel per metric group.

    Rows with the same parameter value (and slider value), for example one
    per seed, are averaged, and their standard deviation is drawn as error
    bars. With ``slider`` set to another column, a slider picks its value and
    shows the curves for it; all curves are stored in the figure.

    Args:
        table: a DataFrame or list of dicts, one row per run.
        parameter: the column on the x axis, e.g. ``"lambda_atp"``.
        metrics: metric columns, one panel each, or a dict of panel y-axis
            title (with units) -> columns drawn together in that panel.
        slider: a column whose values the slider steps through.
        log_x: logarithmic x axis; ``"auto"`` when all values are positive
            and span at least a factor of 100.

    Raises:
        TypeError, ValueError: if ``table`` is not a table, a named column
            is missing, or a metric column is not numeric.
    """
    frame = to_table(table)
    panels = _panels(metrics)
    columns = [metric for group in panels.values() for metric in group]
    check_columns(frame, [parameter, *columns, *([slider] if slider else [])])
    check_choice(log_x, "log_x", ("auto", True, False))
    for column in [parameter, *columns]:
        if not np.issubdtype(frame[column].dtype, np.number):
            raise ValueError(f"table column {column!r} must be numeric, got dtype {frame[column].dtype}.")

    slider_values = sorted(frame[slider].unique()) if slider else [None]
    figure = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.1)
    for slider_index, slider_value in enumerate(slider_values):
        rows = frame if slider is None else frame[frame[slider] == slider_value]
        for panel_index, (y_title, group) in enumerate(panels.items()):
            for color_index, metric in enumerate(group):
                summary = _summary(rows, [parameter], metric)
                figure.add_trace(go.Scatter(
                    x=summary[parameter].round(6).tolist(),
                    y=summary["mean"].round(6).tolist(),
                    error_y={"type": "data", "array": summary["std"].round(6).tolist(),
                             "visible": bool((summary["count"] > 1).any())},
                    mode="lines+markers",
                    name=metric,
                    legendgroup=metric,
                    showlegend=slider_index == 0 and len(group) > 1,
                    visible=slider_index == 0,
                    line={"color": palette.CATEGORY_COLORS[color_index % len(palette.CATEGORY_COLORS)]},
                    customdata=summary["count"].tolist(),
                    hovertemplate=(
                        f"{metric}<br>{parameter} = %{{x}}<br>mean %{{y:.4g}} ± %{{error_y.array:.2g}}"
                        f" (%{{customdata}} runs)<extra></extra>"
                    ),
                ), row=1, col=panel_index + 1)
            figure.update_xaxes(
                title_text=PARAMETER_TITLES.get(parameter, parameter),
                type="log" if _log_axis(frame[parameter].to_numpy(dtype=float), log_x) else None,
                row=1, col=panel_index + 1,
            )
            figure.update_yaxes(title_text=y_title, row=1, col=panel_index + 1)

    figure.update_layout(
        template=palette.TEMPLATE,
        title={"text": title or f"Metrics against {PARAMETER_TITLES.get(parameter, parameter)}"},
        height=height or 420,
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    )
    if slider is not None:
        traces_per_value = len(columns)
        steps = []
        for slider_index, slider_value in enumerate(slider_values):
            visible = [index // traces_per_value == slider_index for index in range(len(figure.data))]
            steps.append({"label": f"{slider_value:g}" if isinstance(slider_value, (int, float, np.number))
                          else str(slider_value), "method": "restyle", "args": [{"visible": visible}]})
        figure.update_layout(
            sliders=[{
                "active": 0, "steps": steps, "pad": {"t": 60},
                "currentvalue": {"prefix": f"{PARAMETER_TITLES.get(slider, slider)}: "},
            }],
            height=(height or 420) + 100,
        )
    return figure


def gap_shift_figure(
    table: Any,
    metrics: Sequence[str] | Mapping[str, Sequence[str]],
    shifted: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    captions: Sequence[str] | None = None,
    *,
    shift_column: str = "shift",
    method: str = "pca",
    webgl: bool | str = "auto",
    hover: str = "auto",
    max_pair_lines: int = 200,
    seed: int = 0,
    title: str = "Shifting the embeddings along the gap vector",
    height: int = 740,
) -> go.Figure:
    """Draw retrieval and clustering metrics against the post-hoc shift, with a slider.

    ``table`` has one row per shift value (``shift_column``, a fraction of
    the gap vector) and the metric columns; rows that repeat a shift are
    averaged. The slider moves a ring along every curve. With ``shifted``, a
    list of ``dict(shift, image_embeddings, text_embeddings)`` holding the
    embeddings after each shift (for example from
    ``medgap_utils.metrics.shift_along_gap``), the figure also draws the
    embedding map of each shift as a frame, fitted once on all shifts. Every
    shift in ``shifted`` must appear in ``table``.

    Args:
        metrics: metric columns, one panel each, or a dict of panel y-axis
            title (with units) -> columns, e.g.
            ``{"recall@1 (%)": ["i2t_R@1", "t2i_R@1"], "V-measure (0 to 1)": ["v_measure"]}``.

    Raises:
        TypeError, ValueError: on a malformed table, missing columns, or a
            shift in ``shifted`` that ``table`` lacks.
    """
    frame = to_table(table)
    panels = _panels(metrics)
    check_columns(frame, [shift_column, *(metric for group in panels.values() for metric in group)])
    summaries = {metric: _summary(frame, [shift_column], metric) for group in panels.values() for metric in group}
    shift_values = summaries[next(iter(summaries))][shift_column].tolist()

    if shifted is None:
        return _shift_curves_figure(summaries, panels, shift_values, shift_column, title, height)

    checked = check_snapshots(shifted, name="shifted", key="shift")
    missing = [snapshot["shift"] for snapshot in checked if snapshot["shift"] not in shift_values]
    if missing:
        raise ValueError(f"shifted has shift values {missing} that table[{shift_column!r}] lacks; "
                         f"compute the metrics for every drawn shift.")
    curves = []
    for y_title, group in panels.items():
        # NOTE: a panel of the animated figure draws one curve, so only the
        # first metric of each panel is drawn there.
        metric = group[0]
        summary = summaries[metric]
        by_shift = dict(zip(summary[shift_column], summary["mean"]))
        xs = summary[shift_column].round(6).tolist()
        ys = summary["mean"].round(6).tolist()
        markers = [round(float(by_shift[snapshot["shift"]]), 6) for snapshot in checked]
        curves.append((y_title, metric, xs, ys, markers))
    return animated_map_figure(
        checked, "shift", curves, labels=labels, captions=captions, method=method, dims=2,
        color_by="modality", webgl=webgl, hover=hover, max_pair_lines=max_pair_lines, seed=seed,
        title=title, slider_prefix="shift λ: ", x_title=PARAMETER_TITLES["shift"], step_format="g",
        height=height,
    )


def _shift_curves_figure(summaries: dict, panels: dict[str, list[str]], shift_values: list[float],
                         shift_column: str, title: str, height: int) -> go.Figure:
    figure = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.1)
    marker_traces: list[int] = []
    for panel_index, (y_title, group) in enumerate(panels.items()):
        for color_index, metric in enumerate(group):
            summary = summaries[metric]
            figure.add_trace(go.Scatter(
                x=summary[shift_column].round(6).tolist(), y=summary["mean"].round(6).tolist(),
                mode="lines+markers", name=metric, legendgroup=metric,
                line={"color": palette.CATEGORY_COLORS[color_index % len(palette.CATEGORY_COLORS)]},
                hovertemplate=f"{metric}<br>shift λ = %{{x}}<br>%{{y:.4g}}<extra></extra>",
            ), row=1, col=panel_index + 1)
            marker_traces.append(len(figure.data))
            figure.add_trace(go.Scatter(
                x=[shift_values[0]], y=[round(float(summary["mean"].iloc[0]), 6)], mode="markers",
                marker={"size": 14, "color": palette.ANNOTATION_COLOR, "symbol": "circle-open", "line": {"width": 3}},
                hoverinfo="skip", showlegend=False, name=f"{metric} (current shift)",
            ), row=1, col=panel_index + 1)
        figure.update_xaxes(title_text=PARAMETER_TITLES["shift"], row=1, col=panel_index + 1)
        figure.update_yaxes(title_text=y_title, row=1, col=panel_index + 1)

    metrics_in_order = [metric for group in panels.values() for metric in group]
    frames, names, labels = [], [], []
    for index, shift in enumerate(shift_values):
        name = f"shift {shift:g}"
        data = [{"type": "scatter", "x": [shift], "y": [round(float(summaries[metric]["mean"].iloc[index]), 6)]}
                for metric in metrics_in_order]
        frames.append(go.Frame(name=name, data=data, traces=marker_traces))
        names.append(name)
        labels.append(f"{shift:g}")
    figure.frames = frames
    slider, _ = frame_controls(names, labels, "shift λ: ", play=False)
    slider.update(x=0, len=1.0)
    figure.update_layout(
        template=palette.TEMPLATE, title={"text": title}, height=height - 260, sliders=[slider],
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        margin={"b": 140},
    )
    return figure
