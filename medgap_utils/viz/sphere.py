"""The unit-sphere view of a 3-D embedding space, with one cone per modality.

A toy model with 3-D embeddings needs no projection: its points lie on the
unit sphere itself. Each modality occupies a cone around its mean direction
(the cone effect), and the gap is the distance between the two cones'
centroids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from medgap_utils.viz import palette
from medgap_utils.viz._checks import check_captions, check_labels, check_pairs
from medgap_utils.viz.embeddings import build_map, check_map_options


def cone_half_angle(embeddings: np.ndarray, quantile: float) -> tuple[np.ndarray, float]:
    """Return the unit mean direction of ``embeddings`` and the ``quantile`` of
    the angles (degrees) between it and each row."""
    axis = embeddings.mean(axis=0)
    axis = axis / np.linalg.norm(axis)
    angles = np.degrees(np.arccos(np.clip(embeddings @ axis, -1.0, 1.0)))
    return axis, float(np.quantile(angles, quantile))


def _circle_on_sphere(axis: np.ndarray, half_angle: float, points: int = 60) -> np.ndarray:
    """Return ``points`` + 1 points (closed loop) at ``half_angle`` degrees from ``axis``."""
    helper = np.eye(3)[np.argmin(np.abs(axis))]
    first = np.cross(axis, helper)
    first /= np.linalg.norm(first)
    second = np.cross(axis, first)
    theta = np.radians(half_angle)
    phi = np.linspace(0, 2 * np.pi, points + 1)
    return (np.cos(theta) * axis[None, :]
            + np.sin(theta) * (np.cos(phi)[:, None] * first[None, :] + np.sin(phi)[:, None] * second[None, :]))


def _sphere_surface(resolution: int = 24) -> go.Surface:
    theta = np.linspace(0, np.pi, resolution)
    phi = np.linspace(0, 2 * np.pi, 2 * resolution)
    x = np.outer(np.sin(theta), np.cos(phi))
    y = np.outer(np.sin(theta), np.sin(phi))
    z = np.outer(np.cos(theta), np.ones_like(phi))
    return go.Surface(
        x=x.round(3), y=y.round(3), z=z.round(3), opacity=0.12, showscale=False, hoverinfo="skip",
        colorscale=[[0, "#BBBBBB"], [1, "#BBBBBB"]], name="unit sphere", showlegend=True,
    )


def sphere_figure(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    labels: Mapping[str, Sequence[str]] | None = None,
    captions: Sequence[str] | None = None,
    *,
    cone_quantile: float = 0.9,
    color_by: str = "modality",
    hover: str = "auto",
    max_pair_lines: int = 200,
    seed: int = 0,
    title: str | None = None,
    height: int = 640,
) -> go.Figure:
    """Draw 3-D embeddings on the unit sphere with the cone of each modality.

    Each cone has its apex at the origin, its axis along the modality's mean
    direction, and a half-angle that contains ``cone_quantile`` of that
    modality's points; its rim is drawn on the sphere. Points, the "color
    by" dropdown, pair lines, centroids and the gap vector are as in
    :func:`medgap_utils.viz.projection_figure` (the centroids here are the
    means of the 3-D embeddings, inside the sphere).

    Args:
        image_embeddings: (N, 3) L2-normalized image embeddings.
        text_embeddings: (N, 3) L2-normalized text embeddings, paired by row.
        cone_quantile: share of points (0 to 1, exclusive of 0) inside each cone.

    Raises:
        ValueError, TypeError: if the embeddings are not (N, 3) and
            normalized, ``cone_quantile`` is outside (0, 1], or an option
            is invalid.
    """
    image, text = check_pairs(image_embeddings, text_embeddings, dim=3)
    label_columns = check_labels(labels, len(image))
    caption_list = check_captions(captions, len(image))
    check_map_options(3, True, hover, max_pair_lines)
    if not 0 < cone_quantile <= 1:
        raise ValueError(f"cone_quantile must be in (0, 1], got {cone_quantile!r}.")

    embedding_map = build_map(
        image, text, label_columns, caption_list, dims=3, color_by=color_by, webgl=True, hover=hover,
        show_pairs=True, show_centroids=True, max_pair_lines=max_pair_lines, seed=seed,
    )
    figure = go.Figure([_sphere_surface(), *embedding_map.traces(image, text)])
    # The surface is trace 0, so the map's traces move one index up.
    layout = embedding_map.layout(title or f"Unit sphere: the two cones ({len(image)} pairs)", height)
    layout["updatemenus"] = [
        embedding_map.color_menu(trace_indices=(1, 2)),
        embedding_map.pairs_menu(trace_index=3),
    ]
    figure.update_layout(layout)

    for name, block in (("image", image), ("text", text)):
        axis, half_angle = cone_half_angle(block, cone_quantile)
        rim = _circle_on_sphere(axis, half_angle)
        description = (f"{name} cone: {cone_quantile:.0%} of {name} embeddings lie within "
                       f"{half_angle:.1f}° of their mean direction")
        figure.add_trace(go.Scatter3d(
            x=rim[:, 0].round(4), y=rim[:, 1].round(4), z=rim[:, 2].round(4), mode="lines",
            line={"color": palette.MODALITY_COLORS[name], "width": 5},
            name=f"{name} cone ({half_angle:.0f}°)", legendgroup=f"{name} cone",
            hovertemplate=f"{description}<extra></extra>",
        ))
        apex_and_rim = np.vstack([np.zeros(3), rim[:-1]])
        count = len(rim) - 1
        figure.add_trace(go.Mesh3d(
            x=apex_and_rim[:, 0].round(4), y=apex_and_rim[:, 1].round(4), z=apex_and_rim[:, 2].round(4),
            i=[0] * count, j=list(range(1, count + 1)), k=[index % count + 1 for index in range(1, count + 1)],
            color=palette.MODALITY_COLORS[name], opacity=0.15, hoverinfo="skip",
            name=f"{name} cone surface", legendgroup=f"{name} cone", showlegend=False,
        ))

    axis_range = [-1.1, 1.1]
    figure.update_scenes(
        xaxis={"title": {"text": "z₁ (unit sphere)"}, "range": axis_range},
        yaxis={"title": {"text": "z₂ (unit sphere)"}, "range": axis_range},
        zaxis={"title": {"text": "z₃ (unit sphere)"}, "range": axis_range},
        aspectmode="cube",
    )
    return figure
