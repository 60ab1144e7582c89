"""Figures of a training run: metric curves and the animated embedding map.

Both take plain data from the training helper's ``fit``: ``history`` is a
list of per-epoch dicts (``epoch`` 0 is before training) and ``snapshots`` a
list of ``dict(epoch, image_embeddings, text_embeddings)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medgap_utils.viz import palette
from medgap_utils.viz._checks import check_captions, check_labels, check_pairs
from medgap_utils.viz.animation import frame_controls, padded_range
from medgap_utils.viz.embeddings import (
    MAP_TRACES,
    apply_axis_titles,
    build_map,
    check_map_options,
    gap_norm,
)
from medgap_utils.viz.projections import METHOD_NAMES, project

EPOCH_TITLE = "epoch (0 = before training)"

# Panels of the training-curve figure: title, y-axis title with units, the
# history keys drawn in it and whether the y axis is logarithmic.
CURVE_PANELS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("training loss", "loss (unitless)",
     ("train_loss", "train_loss_clip", "train_loss_atp", "train_loss_cu"), False),
    ("modality gap", "‖mean(image) − mean(text)‖", ("val_modality_gap",), False),
    ("true-pair cosine", "cosine similarity (−1 to 1)", ("val_true_pair_cosine",), False),
    ("true-pair angle", "angle (degrees)", ("val_true_pair_angle",), False),
    ("temperature", "temperature τ (unitless)", ("temperature",), False),
    ("learning rate", "learning rate (per step, log scale)", ("lr",), True),
)

CURVE_NAMES = {
    "train_loss": "total L",
    "train_loss_clip": "L_CLIP",
    "train_loss_atp": "L_ATP",
    "train_loss_cu": "L_CU",
    "val_modality_gap": "validation gap",
    "val_true_pair_cosine": "validation true-pair cosine",
    "val_true_pair_angle": "validation true-pair angle",
    "temperature": "τ",
    "lr": "learning rate",
}


def check_history(history: Any) -> list[dict]:
    """Return ``history`` sorted by epoch after checking its form.

    Raises:
        TypeError: if it is not a sequence of dicts.
        ValueError: if it is empty or a row lacks a numeric ``epoch``.
    """
    if not isinstance(history, Sequence) or not all(isinstance(row, Mapping) for row in history):
        raise TypeError(f"history must be a list of per-epoch dicts, got {type(history).__name__}.")
    if not history:
        raise ValueError("history is empty; pass the list that fit() returns.")
    for index, row in enumerate(history):
        if not isinstance(row.get("epoch"), (int, float, np.integer, np.floating)):
            raise ValueError(f"history[{index}] has no numeric 'epoch' (got {row.get('epoch')!r}).")
    return sorted((dict(row) for row in history), key=lambda row: row["epoch"])


def _series(history: list[dict], key: str) -> tuple[list[float], list[float]]:
    epochs, values = [], []
    for row in history:
        value = row.get(key)
        if isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            epochs.append(float(row["epoch"]))
            values.append(round(float(value), 6))
    return epochs, values


def training_curves_figure(history: Sequence[Mapping[str, Any]], title: str = "Training run") -> go.Figure:
    """Draw loss terms, gap, true-pair cosine and angle, temperature and learning rate per epoch.

    One panel per group of history keys (see ``CURVE_PANELS``); panels whose
    keys are all missing are left out. Missing or non-finite values in a row
    leave a gap in that curve.

    Raises:
        TypeError, ValueError: if ``history`` is not a non-empty list of
            dicts with an ``epoch``, or contains none of the known keys.
    """
    rows = check_history(history)
    panels = [panel for panel in CURVE_PANELS if any(_series(rows, key)[0] for key in panel[2])]
    if not panels:
        known = sorted(CURVE_NAMES)
        raise ValueError(f"history has none of the keys {known}; its keys are {sorted(rows[0])}.")

    columns = 2 if len(panels) > 1 else 1
    figure_rows = -(-len(panels) // columns)
    figure = make_subplots(
        rows=figure_rows, cols=columns, subplot_titles=[panel[0] for panel in panels],
        horizontal_spacing=0.12, vertical_spacing=0.14 if figure_rows > 1 else 0.1,
    )
    for index, (_, y_title, keys, log_y) in enumerate(panels):
        row, column = index // columns + 1, index % columns + 1
        for color_index, key in enumerate(keys):
            epochs, values = _series(rows, key)
            if not epochs:
                continue
            figure.add_trace(go.Scatter(
                x=epochs, y=values, mode="lines+markers", name=CURVE_NAMES[key],
                line={"color": palette.CATEGORY_COLORS[color_index]},
                hovertemplate=f"{CURVE_NAMES[key]}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
                showlegend=len(keys) > 1,
            ), row=row, col=column)
        figure.update_xaxes(title_text=EPOCH_TITLE, row=row, col=column)
        figure.update_yaxes(title_text=y_title, type="log" if log_y else None, row=row, col=column)
    figure.update_layout(
        template=palette.TEMPLATE, title={"text": title}, height=300 * figure_rows + 80,
        legend={"orientation": "h", "y": 1.02 + 0.1 / figure_rows, "yanchor": "bottom", "x": 1, "xanchor": "right"},
    )
    return figure


def check_snapshots(snapshots: Any, name: str = "snapshots", key: str = "epoch") -> list[dict]:
    """Return the snapshots with checked embeddings, sorted by ``key``.

    Raises:
        TypeError, ValueError: if ``snapshots`` is not a non-empty list of
            dicts with ``key``, ``image_embeddings`` and ``text_embeddings``
            of one common shape.
    """
    if not isinstance(snapshots, Sequence) or not snapshots or not all(isinstance(s, Mapping) for s in snapshots):
        raise TypeError(f"{name} must be a non-empty list of dicts, got {type(snapshots).__name__}.")
    checked = []
    for index, snapshot in enumerate(snapshots):
        missing = {key, "image_embeddings", "text_embeddings"} - set(snapshot)
        if missing:
            raise ValueError(f"{name}[{index}] lacks {sorted(missing)}; its keys are {sorted(snapshot)}.")
        image, text = check_pairs(snapshot["image_embeddings"], snapshot["text_embeddings"])
        if checked and image.shape != checked[0]["image_embeddings"].shape:
            raise ValueError(
                f"{name}[{index}] embeddings have shape {image.shape}, but {name}[0] has "
                f"{checked[0]['image_embeddings'].shape}; every snapshot must embed the same pairs."
            )
        checked.append({key: snapshot[key], "image_embeddings": image, "text_embeddings": text})
    return sorted(checked, key=lambda snapshot: snapshot[key])


def true_pair_cosine(image: np.ndarray, text: np.ndarray) -> float:
    """Return the mean cosine between paired rows of L2-normalized embeddings."""
    return float(np.mean(np.sum(image * text, axis=1)))


def animated_map_figure(
    snapshots: list[dict],
    key: str,
    curves: list[tuple[str, str, list[float], list[float], list[float]]],
    *,
    labels: Mapping[str, Sequence[str]] | None,
    captions: Sequence[str] | None,
    method: str,
    dims: int,
    color_by: str,
    webgl: bool | str,
    hover: str,
    max_pair_lines: int,
    seed: int,
    title: str,
    slider_prefix: str,
    x_title: str,
    step_format: str,
    height: int,
) -> go.Figure:
    """Draw the embedding map per snapshot as frames, beside metric curves.

    ``curves`` holds, per right-hand panel: the y-axis title, the curve's
    name, its x values, its y values, and the y value of the current-frame
    marker for each snapshot. The projection is fitted once on every
    snapshot's image and text rows together, so frames share coordinates.
    """
    count = len(snapshots[0]["image_embeddings"])
    label_columns = check_labels(labels, count)
    caption_list = check_captions(captions, count)

    stacked = np.concatenate([block for s in snapshots for block in (s["image_embeddings"], s["text_embeddings"])])
    projection = project(stacked, method=method, n_components=dims, seed=seed)
    coordinates = projection.coordinates.reshape(len(snapshots), 2, count, dims)

    last = snapshots[-1]
    embedding_map = build_map(
        last["image_embeddings"], last["text_embeddings"], label_columns, caption_list, dims=dims,
        color_by=color_by, webgl=webgl, hover=hover, show_pairs=True, show_centroids=True,
        max_pair_lines=max_pair_lines, seed=seed, points=2 * count,
    )
    gaps = [gap_norm(s["image_embeddings"], s["text_embeddings"]) for s in snapshots]

    map_spec = {"type": "scene" if dims == 3 else "xy", "rowspan": len(curves)}
    specs = [[map_spec, {"type": "xy"}]] + [[None, {"type": "xy"}] for _ in curves[1:]]
    figure = make_subplots(
        rows=len(curves), cols=2, column_widths=[0.6, 0.4], specs=specs,
        horizontal_spacing=0.16, vertical_spacing=0.22,
        subplot_titles=["", *(curve[1] for curve in curves)],
    )
    for trace in embedding_map.traces(coordinates[0, 0], coordinates[0, 1], gaps[0]):
        figure.add_trace(trace, row=1, col=1)
    marker_traces = []
    for index, (y_title, name, xs, ys, marker_ys) in enumerate(curves):
        row = index + 1
        figure.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=name, line={"color": palette.CATEGORY_COLORS[index + 2]},
            hovertemplate=f"{name}<br>{x_title}: %{{x}}<br>%{{y:.4g}}<extra></extra>", showlegend=False,
        ), row=row, col=2)
        marker_traces.append(len(figure.data))
        figure.add_trace(go.Scatter(
            x=[snapshots[0][key]], y=[marker_ys[0]], mode="markers", name=f"{name} (current frame)",
            marker={"size": 14, "color": palette.ANNOTATION_COLOR, "symbol": "circle-open", "line": {"width": 3}},
            hoverinfo="skip", showlegend=False,
        ), row=row, col=2)
        if row == len(curves):
            figure.update_xaxes(title_text=x_title, row=row, col=2)
        figure.update_yaxes(title_text=y_title, row=row, col=2)

    # A frame's annotations replace the figure's by position, so every frame repeats the subplot titles first.
    subplot_titles = [annotation.to_plotly_json() for annotation in figure.layout.annotations]
    frame_names, step_labels, frames = [], [], []
    for index, snapshot in enumerate(snapshots):
        name = f"{key} {snapshot[key]}"
        data = embedding_map.frame_data(coordinates[index, 0], coordinates[index, 1], gaps[index])
        data += [{"type": "scatter", "x": [snapshot[key]], "y": [curve[4][index]]} for curve in curves]
        layout = {}
        if dims == 2:
            layout["annotations"] = [*subplot_titles, embedding_map.gap_arrow(coordinates[index, 0], coordinates[index, 1])]
        frames.append(go.Frame(name=name, data=data, traces=list(range(MAP_TRACES)) + marker_traces, layout=layout))
        frame_names.append(name)
        step_labels.append(format(snapshot[key], step_format))
    figure.frames = frames

    slider, play = frame_controls(frame_names, step_labels, slider_prefix)
    layout = embedding_map.layout(title, height)
    # The colorbar lies flat below the legend: between the map and the curves it would cover their axis titles.
    colorbar_title = {"text": embedding_map.options[embedding_map.initial].column, "side": "top"}
    layout.update(
        coloraxis=embedding_map.coloraxis(orientation="h", x=0, xanchor="left", y=-0.75, yanchor="top", len=0.45,
                                          thickness=12, tickangle=-30, title=colorbar_title),
        updatemenus=[*layout["updatemenus"], *play],
        sliders=[slider],
        legend={"orientation": "h", "x": 0, "y": -0.42, "yanchor": "top"},
        margin={"t": 100, "b": 290, "r": 30},
    )
    figure.update_layout(layout)
    apply_axis_titles(figure, projection, dims)
    if dims == 2:
        all_points = coordinates.reshape(-1, 2)
        figure.update_xaxes(range=padded_range(all_points[:, 0]), row=1, col=1)
        figure.update_yaxes(range=padded_range(all_points[:, 1]), row=1, col=1)
        figure.add_annotation(embedding_map.gap_arrow(coordinates[0, 0], coordinates[0, 1]))
    else:
        all_points = coordinates.reshape(-1, 3)
        figure.update_scenes({
            f"{axis}axis": {"range": padded_range(all_points[:, index]), "autorange": False}
            for index, axis in enumerate("xyz")
        } | {"aspectmode": "cube"})
    return figure


def training_animation_figure(
    snapshots: Sequence[Mapping[str, Any]],
    history: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    captions: Sequence[str] | None = None,
    *,
    method: str = "pca",
    dims: int = 2,
    color_by: str = "modality",
    webgl: bool | str = "auto",
    hover: str = "auto",
    max_pair_lines: int = 200,
    seed: int = 0,
    title: str = "Embeddings over training",
    height: int = 720,
) -> go.Figure:
    """Animate the embedding map over epochs beside the gap and true-pair cosine curves.

    Each snapshot (``dict(epoch, image_embeddings, text_embeddings)``, the
    same K pairs in every snapshot) becomes one frame; a slider and a play
    button step through them. The projection is fitted once on all
    snapshots together, so positions are comparable across frames. The
    curves come from ``history`` (``val_modality_gap``,
    ``val_true_pair_cosine``) when it has them; otherwise from the snapshots
    (gap ‖mean(image) − mean(text)‖ and mean cosine of paired rows). A ring
    marks the current frame's epoch on each curve, at the history value when
    that epoch is in ``history`` and at the snapshot's own value otherwise.

    See :func:`medgap_utils.viz.projection_figure` for ``labels``,
    ``captions``, ``method``, ``dims``, ``color_by``, ``webgl`` and ``hover``.

    Raises:
        TypeError, ValueError: on malformed snapshots, history or options.
    """
    checked = check_snapshots(snapshots)
    check_map_options(dims, webgl, hover, max_pair_lines)
    rows = check_history(history) if history is not None else []
    epochs = [snapshot["epoch"] for snapshot in checked]

    curves = []
    for key, y_title, name, own_values in (
        ("val_modality_gap", "‖mean(image) − mean(text)‖", "modality gap",
         [gap_norm(s["image_embeddings"], s["text_embeddings"]) for s in checked]),
        ("val_true_pair_cosine", "cosine (−1 to 1)", "true-pair cosine",
         [true_pair_cosine(s["image_embeddings"], s["text_embeddings"]) for s in checked]),
    ):
        xs, ys = _series(rows, key)
        if xs:
            by_epoch = dict(zip(xs, ys))
            markers = [by_epoch.get(float(epoch), own) for epoch, own in zip(epochs, own_values)]
            curves.append((y_title, f"validation {name}", xs, ys, markers))
        else:
            rounded = [round(value, 6) for value in own_values]
            curves.append((y_title, f"{name} (snapshot pairs)", [float(e) for e in epochs], rounded, rounded))

    return animated_map_figure(
        checked, "epoch", curves, labels=labels, captions=captions, method=method, dims=dims,
        color_by=color_by, webgl=webgl, hover=hover, max_pair_lines=max_pair_lines, seed=seed,
        title=f"{title} ({METHOD_NAMES.get(method, method)} fitted on all epochs)",
        slider_prefix="epoch: ", x_title=EPOCH_TITLE, step_format="", height=height,
    )
