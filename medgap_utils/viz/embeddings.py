"""The embedding map: image and text embeddings projected to 2-D or 3-D.

:func:`projection_figure` draws one map. :class:`EmbeddingMap` builds its
traces, and the animated figures (training epochs, post-hoc gap shift) reuse
it so that every frame has the same traces in the same order:

====  =======================================================
0     image points (marker circle)
1     text points (marker diamond)
2     lines joining true pairs (a seeded subset of pairs)
3     image centroid
4     text centroid
5     gap vector from the image centroid to the text centroid
====  =======================================================

Points are colored through one shared ``coloraxis`` by integer codes, so the
"color by" dropdown swaps small integer arrays instead of per-point color
strings, and the colorbar names the categories.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from medgap_utils.viz import palette
from medgap_utils.viz._checks import check_captions, check_choice, check_labels, check_pairs
from medgap_utils.viz.projections import METHOD_NAMES, Projection, project

IMAGE_TRACE, TEXT_TRACE, PAIRS_TRACE, IMAGE_CENTROID_TRACE, TEXT_CENTROID_TRACE, GAP_TRACE = range(6)
MAP_TRACES = 6

# Above this many points in one figure, 2-D maps use WebGL traces (scattergl):
# SVG markers make panning and hovering sluggish from a few thousand points on.
WEBGL_THRESHOLD = 2000

CAPTION_HOVER_CHARS = 80

# Above this many pairs, hover="auto" shows only the pair index, which plotly
# computes in the browser: per-point hover text would dominate the figure's
# size (about 150 bytes a pair with captions, written once per modality).
HOVER_TEXT_MAX_PAIRS = 2000


def gap_norm(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> float:
    """Return ‖mean(image) − mean(text)‖, the modality gap, in embedding units."""
    return float(np.linalg.norm(image_embeddings.mean(axis=0) - text_embeddings.mean(axis=0)))


def compact(values: np.ndarray) -> np.ndarray:
    """Return coordinates as float32, rounded to 1e-4 of their range.

    Figures are embedded in the page as JSON, and plotly stores float32
    arrays there as base64 (4 bytes a value). The rounding keeps values that
    end up in a plain list (pair lines, centroids) short too.
    """
    values = np.asarray(values, dtype=np.float64)
    span = float(np.ptp(values)) if values.size else 0.0
    decimals = int(max(0, 4 - np.floor(np.log10(span)))) if span > 0 else 4
    return np.round(values, decimals).astype(np.float32)


@dataclasses.dataclass
class ColorOption:
    """One entry of the "color by" dropdown: integer codes per point and their names."""

    column: str
    image_codes: np.ndarray
    text_codes: np.ndarray
    names: list[str]
    colors: list[str]

    def coloraxis(self) -> dict:
        return {
            "colorscale": palette.discrete_colorscale(self.colors),
            "cmin": -0.5,
            "cmax": len(self.names) - 0.5,
            "colorbar": {
                "title": {"text": self.column},
                "tickvals": list(range(len(self.names))),
                "ticktext": self.names,
                "len": 0.6,
                "thickness": 14,
            },
        }


def color_options(labels: Mapping[str, np.ndarray], count: int) -> list[ColorOption]:
    """Return the "modality" option followed by one option per label column."""
    options = [ColorOption(
        "modality",
        np.zeros(count, dtype=np.uint8),
        np.ones(count, dtype=np.uint8),
        ["image", "text"],
        [palette.MODALITY_COLORS["image"], palette.MODALITY_COLORS["text"]],
    )]
    for column, values in labels.items():
        names = sorted(set(values))
        index = {name: code for code, name in enumerate(names)}
        codes = np.array([index[value] for value in values], dtype=np.uint16 if len(names) > 255 else np.uint8)
        colors = list(palette.category_colors(names).values())
        options.append(ColorOption(column, codes, codes, names, colors))
    return options


def hover_texts(count: int, labels: Mapping[str, np.ndarray], captions: Sequence[str] | None) -> list[str]:
    """Return one hover text per pair: pair index, wrapped caption, label values."""
    texts = []
    for row in range(count):
        lines = [f"pair {row}"]
        if captions is not None:
            caption = textwrap.shorten(captions[row], CAPTION_HOVER_CHARS, placeholder=" …")
            lines.extend(textwrap.wrap(caption, 45))
        lines.extend(f"{column}: {values[row]}" for column, values in labels.items())
        texts.append("<br>".join(lines))
    return texts


@dataclasses.dataclass
class EmbeddingMap:
    """Builds the six traces of an embedding map for given coordinates.

    Attributes:
        dims: 2 or 3.
        use_webgl: draw 2-D points with scattergl (3-D is always WebGL).
        options: the "color by" choices; ``options[initial]`` colors at first.
        hover: one hover text per pair, shared by the image and text point,
            or ``None`` to show only the pair index.
        pair_rows: rows whose true-pair line is drawn.
        gap_norm: the gap in the original embedding space, shown on hover.
        embedding_dim: D of the original embeddings, shown on hover.
        show_pairs: whether the pair lines are visible at first.
        show_centroids: whether centroids and the gap vector are drawn.
        marker_size: point size in pixels.
    """

    dims: int
    use_webgl: bool
    options: list[ColorOption]
    hover: list[str] | None
    pair_rows: np.ndarray
    gap_norm: float
    embedding_dim: int
    initial: int = 0
    show_pairs: bool = True
    show_centroids: bool = True
    marker_size: float = 6.0

    def _scatter(self, **kwargs) -> go.BaseTraceType:
        if self.dims == 3:
            return go.Scatter3d(**kwargs)
        return go.Scattergl(**kwargs) if self.use_webgl else go.Scatter(**kwargs)

    def _xyz(self, coordinates: np.ndarray) -> dict:
        axes = ("x", "y", "z")[: self.dims]
        return {axis: coordinates[:, index] for index, axis in enumerate(axes)}

    def traces(self, image_xy: np.ndarray, text_xy: np.ndarray, gap: float | None = None) -> list[go.BaseTraceType]:
        """Return the six traces (see the module docstring) for these coordinates.

        ``gap`` is the modality gap shown on the gap vector; it defaults to
        ``self.gap_norm``.
        """
        gap = self.gap_norm if gap is None else gap
        option = self.options[self.initial]
        traces = []
        for name, coordinates, codes in (
            ("image", image_xy, option.image_codes),
            ("text", text_xy, option.text_codes),
        ):
            marker = {
                "symbol": palette.MODALITY_SYMBOLS[name],
                "size": self.marker_size if self.dims == 2 else self.marker_size * 0.6,
                "color": codes,
                "coloraxis": "coloraxis",
                "line": {"width": 0.5, "color": "white"} if self.dims == 2 else {"width": 0},
                "opacity": 0.85,
            }
            traces.append(self._scatter(
                name=f"{name} embeddings",
                mode="markers",
                marker=marker,
                text=self.hover,
                hovertemplate=(
                    f"%{{text}}<extra>{name}</extra>" if self.hover is not None
                    else f"pair %{{pointNumber}}<extra>{name}</extra>"
                ),
                legendgroup=name,
                **self._xyz(compact(coordinates)),
            ))

        traces.append(self._scatter(
            name="true pairs",
            mode="lines",
            line={"color": palette.PAIR_LINE_COLOR, "width": 1},
            hoverinfo="skip",
            visible=True if self.show_pairs else "legendonly",
            **self._pair_lines(image_xy, text_xy),
        ))

        centroids = {"image": image_xy.mean(axis=0), "text": text_xy.mean(axis=0)}
        for name, centroid in centroids.items():
            traces.append(self._scatter(
                name=f"{name} centroid",
                mode="markers",
                marker={
                    "symbol": palette.MODALITY_SYMBOLS[name],
                    "size": 16 if self.dims == 2 else 8,
                    "color": palette.MODALITY_COLORS[name],
                    "line": {"width": 2, "color": palette.ANNOTATION_COLOR},
                },
                hovertemplate=f"{name} centroid (mean of the projected {name} points)<extra></extra>",
                legendgroup="centroids",
                visible=self.show_centroids,
                **self._xyz(compact(centroid[None, :])),
            ))

        traces.append(self._scatter(
            name=f"gap vector (‖gap‖ = {gap:.3f})",
            mode="lines",
            line={"color": palette.ANNOTATION_COLOR, "width": 4 if self.dims == 2 else 6},
            hovertemplate=(
                f"modality gap ‖mean(image) − mean(text)‖ = {gap:.3f}<br>"
                f"measured in the {self.embedding_dim}-d embedding space<extra></extra>"
            ),
            legendgroup="centroids",
            visible=self.show_centroids,
            **self._xyz(compact(np.stack([centroids["image"], centroids["text"]]))),
        ))
        return traces

    def _pair_lines(self, image_xy: np.ndarray, text_xy: np.ndarray) -> dict:
        # Segments image -> text separated by a gap (None), as plotly expects
        # for many lines in one trace.
        coordinates = {}
        for index, axis in enumerate(("x", "y", "z")[: self.dims]):
            start = compact(image_xy[self.pair_rows, index]).tolist()
            end = compact(text_xy[self.pair_rows, index]).tolist()
            coordinates[axis] = [value for segment in zip(start, end, [None] * len(start)) for value in segment]
        return coordinates

    def gap_arrow(self, image_xy: np.ndarray, text_xy: np.ndarray, axes: tuple[str, str] = ("x", "y")) -> dict:
        """Return the 2-D arrow annotation from the image to the text centroid."""
        start = compact(image_xy.mean(axis=0)).tolist()
        end = compact(text_xy.mean(axis=0)).tolist()
        return {
            "x": end[0], "y": end[1], "ax": start[0], "ay": start[1],
            "xref": axes[0], "yref": axes[1], "axref": axes[0], "ayref": axes[1],
            "showarrow": True, "arrowhead": 3, "arrowsize": 1.5, "arrowwidth": 2,
            "arrowcolor": palette.ANNOTATION_COLOR, "text": "",
            "visible": self.show_centroids,
        }

    def frame_data(self, image_xy: np.ndarray, text_xy: np.ndarray, gap: float | None = None) -> list[dict]:
        """Return the six traces' updates for an animation frame.

        A frame carries coordinates (and the gap vector's name and hover),
        not colors, so the "color by" choice survives playing the animation.
        """
        keys = ("x", "y", "z")[: self.dims]
        data = []
        for trace in self.traces(image_xy, text_xy, gap):
            update = {key: trace[key] for key in keys}
            update["type"] = trace.type
            if trace.name.startswith("gap vector"):
                update["name"] = trace.name
                update["hovertemplate"] = trace.hovertemplate
            data.append(update)
        return data

    def color_menu(self, trace_indices: Sequence[int] = (IMAGE_TRACE, TEXT_TRACE), x: float = 0.0) -> dict:
        """Return the "color by" dropdown; it restyles the point traces and the coloraxis."""
        buttons = []
        for option in self.options:
            coloraxis = option.coloraxis()
            buttons.append({
                "label": f"color by {option.column}",
                "method": "update",
                "args": [
                    {"marker.color": [option.image_codes.tolist(), option.text_codes.tolist()]},
                    {f"coloraxis.{key}": value for key, value in coloraxis.items() if key != "colorbar"}
                    | {
                        "coloraxis.colorbar.title.text": option.column,
                        "coloraxis.colorbar.tickvals": coloraxis["colorbar"]["tickvals"],
                        "coloraxis.colorbar.ticktext": coloraxis["colorbar"]["ticktext"],
                    },
                    list(trace_indices),
                ],
            })
        return {
            "type": "dropdown", "buttons": buttons, "active": self.initial, "showactive": True,
            "x": x, "xanchor": "left", "y": 1.02, "yanchor": "bottom",
        }

    def pairs_menu(self, trace_index: int = PAIRS_TRACE, x: float = 0.3) -> dict:
        """Return the buttons that show or hide the true-pair lines."""
        return {
            "type": "buttons", "direction": "right", "showactive": True,
            "active": 0 if self.show_pairs else 1,
            "buttons": [
                {"label": "pairs on", "method": "restyle", "args": [{"visible": True}, [trace_index]]},
                {"label": "pairs off", "method": "restyle", "args": [{"visible": "legendonly"}, [trace_index]]},
            ],
            "x": x, "xanchor": "left", "y": 1.02, "yanchor": "bottom",
        }

    def coloraxis(self, **colorbar) -> dict:
        """Return the shared coloraxis for the initial option; ``colorbar`` overrides placement."""
        coloraxis = self.options[self.initial].coloraxis()
        coloraxis["colorbar"].update(colorbar)
        return coloraxis

    def layout(self, title: str, height: int) -> dict:
        """Return the layout shared by map figures: title, menus, colorbar and legend at the right."""
        return {
            "template": palette.TEMPLATE,
            "title": {"text": title, "x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top"},
            "height": height,
            "coloraxis": self.coloraxis(x=1.02, xanchor="left", y=1.0, yanchor="top", len=0.45),
            "updatemenus": [self.color_menu(), self.pairs_menu()],
            "legend": {"x": 1.02, "xanchor": "left", "y": 0.5, "yanchor": "top"},
            "margin": {"t": 100, "r": 200},
        }


def build_map(
    image: np.ndarray,
    text: np.ndarray,
    labels: Mapping[str, np.ndarray],
    captions: Sequence[str] | None,
    *,
    dims: int,
    color_by: str,
    webgl: bool | str,
    hover: str,
    show_pairs: bool,
    show_centroids: bool,
    max_pair_lines: int,
    seed: int,
    points: int | None = None,
) -> EmbeddingMap:
    """Return an :class:`EmbeddingMap` for checked inputs (see :func:`projection_figure`)."""
    count = len(image)
    options = color_options(labels, count)
    columns = [option.column for option in options]
    check_choice(color_by, "color_by", columns)
    if webgl == "auto":
        use_webgl = (points or 2 * count) > WEBGL_THRESHOLD
    else:
        use_webgl = bool(webgl)
    show_hover_text = hover == "full" or (hover == "auto" and count <= HOVER_TEXT_MAX_PAIRS)
    rng = np.random.default_rng(seed)
    pair_rows = np.sort(rng.choice(count, size=min(count, max_pair_lines), replace=False))
    return EmbeddingMap(
        dims=dims,
        use_webgl=use_webgl,
        options=options,
        hover=hover_texts(count, labels, captions) if show_hover_text else None,
        pair_rows=pair_rows,
        gap_norm=gap_norm(image, text),
        embedding_dim=image.shape[1],
        initial=columns.index(color_by),
        show_pairs=show_pairs,
        show_centroids=show_centroids,
    )


def check_map_options(dims: int, webgl: bool | str, hover: str, max_pair_lines: int) -> None:
    """Validate the options shared by every embedding-map figure."""
    check_choice(dims, "dims", (2, 3))
    check_choice(webgl, "webgl", ("auto", True, False))
    check_choice(hover, "hover", ("auto", "full", "index"))
    if not isinstance(max_pair_lines, (int, np.integer)) or max_pair_lines < 0:
        raise ValueError(f"max_pair_lines must be a non-negative integer, got {max_pair_lines!r}.")


def projection_figure(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    labels: Mapping[str, Sequence[str]] | None = None,
    captions: Sequence[str] | None = None,
    *,
    method: str = "pca",
    dims: int = 2,
    color_by: str = "modality",
    show_pairs: bool = True,
    show_centroids: bool = True,
    max_pair_lines: int = 300,
    webgl: bool | str = "auto",
    hover: str = "auto",
    seed: int = 0,
    title: str | None = None,
    height: int = 560,
) -> go.Figure:
    """Draw image and text embeddings in one 2-D or 3-D projection.

    The projection (``"pca"``, ``"tsne"`` or ``"umap"``, see
    :func:`medgap_utils.viz.projections.project`) is fitted on the stacked
    image and text rows. Image points are circles and text points diamonds;
    a dropdown colors both by ``"modality"`` or by any ``labels`` column.
    Gray lines join up to ``max_pair_lines`` true pairs (a subset drawn with
    ``seed``), and buttons show or hide them. The two modality centroids (the
    mean of each modality's projected points) are joined by the gap vector,
    whose hover gives the gap measured in the original D-dim space. Hovering
    a point shows its pair index, caption (shortened to 80 characters) and
    labels. With ``hover="auto"`` and more than 2000 pairs it shows only the
    pair index, which keeps the figure small.

    Args:
        image_embeddings: (N, D) L2-normalized image embeddings.
        text_embeddings: (N, D) L2-normalized text embeddings; row i pairs
            with row i of ``image_embeddings``.
        labels: column name -> N strings, e.g. ``{"anatomy": [...]}``.
        captions: N captions, shown on hover.
        dims: 2 or 3 (3-D uses WebGL scatter3d).
        color_by: ``"modality"`` or a ``labels`` column, colored at first.
        webgl: ``"auto"`` uses scattergl above 2000 points, else SVG;
            ``True``/``False`` force it.
        hover: ``"full"`` (index, caption, labels), ``"index"`` (pair
            index only) or ``"auto"`` (full up to 2000 pairs, else index).
        height: figure height in pixels.

    Returns:
        A plotly figure. Its JSON size grows by about 20 bytes per pair and
        label column, plus the hover text with ``hover="full"`` (up to about
        300 bytes per pair with captions).

    Raises:
        ValueError, TypeError: on invalid embeddings, labels, captions or
            options; the message names the argument.
    """
    image, text = check_pairs(image_embeddings, text_embeddings)
    label_columns = check_labels(labels, len(image))
    caption_list = check_captions(captions, len(image))
    check_map_options(dims, webgl, hover, max_pair_lines)

    projection = project(np.concatenate([image, text]), method=method, n_components=dims, seed=seed)
    embedding_map = build_map(
        image, text, label_columns, caption_list, dims=dims, color_by=color_by, webgl=webgl, hover=hover,
        show_pairs=show_pairs, show_centroids=show_centroids, max_pair_lines=max_pair_lines, seed=seed,
    )
    image_xy, text_xy = np.split(projection.coordinates, 2)

    figure = go.Figure(embedding_map.traces(image_xy, text_xy))
    title = title or f"Image and text embeddings ({METHOD_NAMES[method]}, {len(image)} pairs)"
    figure.update_layout(embedding_map.layout(title, height))
    apply_axis_titles(figure, projection, dims)
    if dims == 2:
        figure.add_annotation(embedding_map.gap_arrow(image_xy, text_xy))
    return figure


def apply_axis_titles(figure: go.Figure, projection: Projection, dims: int, scene: str = "scene",
                      xaxis: str = "xaxis", yaxis: str = "yaxis") -> None:
    """Set axis titles (with units) and equal aspect on a map's axes."""
    titles = projection.axis_titles()
    if dims == 3:
        figure.update_layout({scene: {
            "xaxis": {"title": {"text": titles[0]}},
            "yaxis": {"title": {"text": titles[1]}},
            "zaxis": {"title": {"text": titles[2]}},
            "aspectmode": "data",
        }})
        return
    anchor = xaxis.replace("axis", "")
    figure.update_layout({
        xaxis: {"title": {"text": titles[0]}},
        yaxis: {"title": {"text": titles[1]}, "scaleanchor": anchor, "scaleratio": 1},
    })
