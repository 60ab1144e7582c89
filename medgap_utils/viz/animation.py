"""Slider and play/pause controls for figures with animation frames.

The controls call ``Plotly.animate`` with frames stored in the figure, so
they work in the static book without a kernel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def frame_controls(
    frame_names: Sequence[str],
    step_labels: Sequence[str],
    prefix: str,
    duration_ms: int = 500,
    play: bool = True,
) -> tuple[dict, list[dict]]:
    """Return ``(slider, updatemenus)`` that step through ``frame_names``.

    ``step_labels`` are the slider's tick labels, one per frame. ``prefix`` labels the slider's current value, e.g. ``"epoch: "``. Frames
    are redrawn on every step (``redraw=True``) because WebGL traces are not
    updated otherwise. ``updatemenus`` contains the play and pause buttons,
    or nothing when ``play`` is false.
    """
    step_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    slider = {
        "active": 0,
        "currentvalue": {"prefix": prefix, "font": {"size": 14}},
        "pad": {"t": 50, "b": 10},
        "x": 0.1, "len": 0.9, "xanchor": "left", "y": 0, "yanchor": "top",
        "steps": [
            {"label": label, "method": "animate", "args": [[name], step_args]}
            for name, label in zip(frame_names, step_labels)
        ],
    }
    if not play:
        return slider, []
    menu = {
        "type": "buttons", "direction": "left", "showactive": False,
        "x": 0.1, "xanchor": "right", "y": 0, "yanchor": "top", "pad": {"t": 60, "r": 10},
        "buttons": [
            {
                "label": "▶ play", "method": "animate",
                "args": [None, {"frame": {"duration": duration_ms, "redraw": True},
                                "transition": {"duration": 0}, "fromcurrent": True}],
            },
            {
                "label": "❚❚ pause", "method": "animate",
                "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate",
                                  "transition": {"duration": 0}}],
            },
        ],
    }
    return slider, [menu]


def padded_range(values: np.ndarray, fraction: float = 0.05) -> list[float]:
    """Return ``[min, max]`` of ``values`` widened by ``fraction`` of the span on each side."""
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    margin = (high - low) * fraction or 0.5
    return [round(low - margin, 4), round(high + margin, 4)]
