"""Embedding maps of several models side by side, with optional highlighted pairs.

:func:`comparison_figure` draws the same N pairs as embedded by one or more
models, one 2-D panel per model. Each panel's projection is fitted on that
model's own rows, because different models have different spaces. One
"color by" dropdown and one pair-line toggle act on every panel at once.
Extra pairs, such as real scanner slices next to a phantom corpus, can be
drawn on top as large outlined stars, placed by the same projection.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medgap_utils.viz import palette
from medgap_utils.viz._checks import check_captions, check_labels, check_pairs
from medgap_utils.viz.embeddings import (
    GAP_TRACE,
    IMAGE_TRACE,
    PAIRS_TRACE,
    TEXT_TRACE,
    apply_axis_titles,
    build_map,
    check_map_options,
    compact,
)
from medgap_utils.viz.projections import METHOD_NAMES, project

HIGHLIGHT_SYMBOLS = {"image": "star", "text": "star-diamond"}
HIGHLIGHT_HOVER_CHARS = 120


def _check_spaces(spaces: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not isinstance(spaces, Mapping) or not spaces:
        raise TypeError(
            "spaces must be a non-empty dict of panel title -> (image_embeddings, text_embeddings), "
            f"got {type(spaces).__name__}."
        )
    checked = {}
    for title, pair in spaces.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"spaces[{title!r}] must be a tuple (image_embeddings, text_embeddings).")
        checked[str(title)] = check_pairs(*pair)
    counts = {title: len(image) for title, (image, _) in checked.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every space must embed the same pairs (equal row counts), got {counts}.")
    return checked


def _check_highlights(
    highlights: Any, names: Sequence[str] | None, spaces: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    if highlights is None:
        if names is not None:
            raise ValueError("highlight_names is given without highlights; pass both or neither.")
        return {}, []
    if not isinstance(highlights, Mapping) or set(map(str, highlights)) != set(spaces):
        keys = sorted(map(str, highlights)) if isinstance(highlights, Mapping) else type(highlights).__name__
        raise ValueError(f"highlights must have the same keys as spaces ({sorted(spaces)}), got {keys}.")
    checked = {}
    for title, pair in highlights.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"highlights[{title!r}] must be a tuple (image_embeddings, text_embeddings).")
        image, text = check_pairs(*pair, dim=spaces[str(title)][0].shape[1])
        checked[str(title)] = (image, text)
    counts = {len(image) for image, _ in checked.values()}
    if len(counts) != 1:
        raise ValueError("every entry of highlights must contain the same highlighted pairs (equal row counts).")
    count = counts.pop()
    if names is None:
        names = [f"highlight {index}" for index in range(count)]
    if isinstance(names, str) or len(names) != count:
        raise ValueError(f"highlight_names must have {count} strings (one per highlighted pair), got {names!r}.")
    return checked, [str(name) for name in names]


def _highlight_traces(image_xy: np.ndarray, text_xy: np.ndarray, names: list[str], show_legend: bool,
                      axes: dict[str, str]) -> list[go.Scatter]:
    hover = [textwrap.shorten(name, HIGHLIGHT_HOVER_CHARS, placeholder=" …") for name in names]
    traces = []
    for modality, coordinates in (("image", image_xy), ("text", text_xy)):
        traces.append(go.Scatter(
            x=compact(coordinates[:, 0]), y=compact(coordinates[:, 1]), mode="markers",
            name=f"highlighted {modality}s",
            marker={"symbol": HIGHLIGHT_SYMBOLS[modality], "size": 18, "color": palette.MODALITY_COLORS[modality],
                    "line": {"width": 2, "color": palette.ANNOTATION_COLOR}},
            text=hover, hovertemplate=f"%{{text}}<extra>highlighted {modality}</extra>",
            legendgroup=f"highlight {modality}", showlegend=show_legend, **axes,
        ))
    segments: dict[str, list] = {"x": [], "y": []}
    for row in range(len(names)):
        for index, axis in enumerate(("x", "y")):
            segments[axis] += [float(image_xy[row, index]), float(text_xy[row, index]), None]
    traces.append(go.Scatter(
        **segments, mode="lines", name="highlighted pairs",
        line={"color": palette.ANNOTATION_COLOR, "width": 1.5, "dash": "dot"}, hoverinfo="skip",
        legendgroup="highlight pairs", showlegend=show_legend, **axes,
    ))
    return traces


def comparison_figure(
    spaces: Mapping[str, tuple[Any, Any]],
    labels: Mapping[str, Sequence[str]] | None = None,
    captions: Sequence[str] | None = None,
    *,
    highlights: Mapping[str, tuple[Any, Any]] | None = None,
    highlight_names: Sequence[str] | None = None,
    method: str = "pca",
    color_by: str = "modality",
    max_pair_lines: int = 150,
    webgl: bool | str = "auto",
    hover: str = "auto",
    seed: int = 0,
    title: str | None = None,
    height: int = 800,
) -> go.Figure:
    """Draw the same pairs as embedded by several models, one 2-D map per model, side by side.

    Each panel is the map of :func:`medgap_utils.viz.projection_figure`
    (image circles, text diamonds, true-pair lines, both centroids and the
    gap vector, whose hover gives the gap in that model's own space), with the
    projection fitted on that panel's stacked rows, highlights included.
    The dropdown colors every panel by ``"modality"`` or a ``labels`` column,
    and the buttons show or hide the pair lines in every panel.

    Args:
        spaces: panel title -> ``(image_embeddings, text_embeddings)``, each
            (N, D) and L2-normalized, row i the same pair in every space (D may
            differ between spaces).
        labels: column name -> N strings, shared by every panel.
        captions: N captions, shown on hover.
        highlights: panel title -> ``(image_embeddings, text_embeddings)`` of
            K extra pairs (K, D), drawn as outlined stars joined by dotted
            lines; same keys as ``spaces``. They do not count toward the centroids.
        highlight_names: K hover texts of the highlighted pairs (default
            ``"highlight 0"``, ...).
        method, color_by, max_pair_lines, webgl, hover, seed: as in
            :func:`medgap_utils.viz.projection_figure` (2-D only).
        height: figure height in pixels.

    Returns:
        A plotly figure with ``6 + (3 if highlights else 0)`` traces per panel,
        panels in the order of ``spaces``.

    Raises:
        TypeError, ValueError: on malformed spaces or highlights (unequal row
            counts, other keys, wrong dimension), labels, captions or options.
    """
    checked = _check_spaces(spaces)
    extra, names = _check_highlights(highlights, highlight_names, checked)
    count = len(next(iter(checked.values()))[0])
    label_columns = check_labels(labels, count)
    caption_list = check_captions(captions, count)
    check_map_options(2, webgl, hover, max_pair_lines)

    titles = list(checked)
    figure = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.14)
    point_traces, pair_traces = [], []
    embedding_map = None
    for column, panel in enumerate(titles, start=1):
        image, text = checked[panel]
        blocks = [image, text, *extra.get(panel, ())]
        projection = project(np.concatenate(blocks), method=method, n_components=2, seed=seed)
        coordinates = np.split(projection.coordinates, np.cumsum([len(block) for block in blocks])[:-1])

        embedding_map = build_map(
            image, text, label_columns, caption_list, dims=2, color_by=color_by, webgl=webgl, hover=hover,
            show_pairs=True, show_centroids=True, max_pair_lines=max_pair_lines, seed=seed,
            points=2 * count * len(titles),
        )
        offset = len(figure.data)
        for index, trace in enumerate(embedding_map.traces(coordinates[0], coordinates[1])):
            if index == GAP_TRACE:
                trace.name = f"{panel}: {trace.name}"
            trace.showlegend = column == 1 or index == GAP_TRACE
            figure.add_trace(trace, row=1, col=column)
        point_traces += [offset + IMAGE_TRACE, offset + TEXT_TRACE]
        pair_traces.append(offset + PAIRS_TRACE)

        suffix = "" if column == 1 else str(column)
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        if extra:
            figure.add_traces(_highlight_traces(coordinates[2], coordinates[3], names, column == 1, axes))
        apply_axis_titles(figure, projection, 2, xaxis=f"xaxis{suffix}", yaxis=f"yaxis{suffix}")
        figure.add_annotation(embedding_map.gap_arrow(coordinates[0], coordinates[1], axes=(axes["xaxis"],
                                                                                               axes["yaxis"])))

    # The page column of the book is narrow, so the menus sit above the panel
    # titles and the colorbar and legend below the panels, leaving the full
    # width to the maps.
    color_menu = embedding_map.color_menu(trace_indices=point_traces)
    for button in color_menu["buttons"]:
        button["args"][0]["marker.color"] = button["args"][0]["marker.color"] * len(titles)
    pairs_menu = embedding_map.pairs_menu()
    for button in pairs_menu["buttons"]:
        button["args"][1] = pair_traces
    for menu in (color_menu, pairs_menu):
        menu["y"] = 1.12

    layout = embedding_map.layout(
        title or f"The same {count} pairs in {len(titles)} embedding spaces ({METHOD_NAMES[method]} per panel)",
        height,
    )
    colorbar_title = {"text": embedding_map.options[embedding_map.initial].column, "side": "top"}
    layout.update(
        updatemenus=[color_menu, pairs_menu],
        coloraxis=embedding_map.coloraxis(orientation="h", x=0.5, xanchor="center", y=-0.2, yanchor="top",
                                          len=0.9, title=colorbar_title, tickangle=-35),
        legend={"orientation": "h", "x": 0, "y": -0.7, "yanchor": "top"},
        margin={"t": 130, "b": 370, "l": 60, "r": 20},
    )
    figure.update_layout(layout)
    return figure
