"""Colors, marker symbols and the plotly template shared by every medgap figure.

Colors come from the Okabe-Ito palette (Okabe and Ito, "Color Universal
Design", 2008), which stays distinguishable under the common forms of color
blindness. Image and text points also differ by marker shape, so modality
never depends on color alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}

# Category colors in the order they are assigned. Black is kept for
# annotations (centroids, the gap vector), and yellow comes last because it
# is hard to see on white.
CATEGORY_COLORS: tuple[str, ...] = tuple(
    OKABE_ITO[name]
    for name in ("blue", "orange", "bluish_green", "reddish_purple", "sky_blue", "vermillion", "yellow")
)

MODALITY_COLORS: dict[str, str] = {"image": OKABE_ITO["blue"], "text": OKABE_ITO["vermillion"]}

# Symbols that scatter, scattergl and scatter3d all support.
MODALITY_SYMBOLS: dict[str, str] = {"image": "circle", "text": "diamond"}

ANNOTATION_COLOR = OKABE_ITO["black"]
PAIR_LINE_COLOR = "rgba(120, 120, 120, 0.35)"
GRID_COLOR = "#E6E6E6"

# A small explicit template: plotly's named templates embed about 8 KB of
# JSON in every figure, and each figure is embedded in its book page.
TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": "Helvetica, Arial, sans-serif", "size": 13, "color": "#222222"},
        "colorway": list(CATEGORY_COLORS),
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "hoverlabel": {"align": "left"},
        "xaxis": {"gridcolor": GRID_COLOR, "zerolinecolor": "#BBBBBB", "linecolor": "#888888", "ticks": "outside"},
        "yaxis": {"gridcolor": GRID_COLOR, "zerolinecolor": "#BBBBBB", "linecolor": "#888888", "ticks": "outside"},
        "legend": {"bgcolor": "rgba(255, 255, 255, 0.8)"},
        "margin": {"l": 70, "r": 30, "t": 60, "b": 60},
    }
)


def category_colors(categories: Sequence[str]) -> dict[str, str]:
    """Map each category to a palette color, in the order given.

    Categories beyond the seven palette colors reuse them cyclically; a
    figure with that many categories should not rely on color alone.
    """
    return {category: CATEGORY_COLORS[index % len(CATEGORY_COLORS)] for index, category in enumerate(categories)}


def discrete_colorscale(colors: Sequence[str]) -> list[list]:
    """Return a plotly colorscale with one flat band per color.

    With ``cmin=-0.5`` and ``cmax=len(colors) - 0.5``, the integer code ``i``
    of a point falls in the middle of band ``i`` and gets ``colors[i]``.
    """
    if not colors:
        raise ValueError("colors is empty; pass at least one color.")
    if len(colors) == 1:
        return [[0.0, colors[0]], [1.0, colors[0]]]
    scale = []
    for index, color in enumerate(colors):
        scale.append([index / len(colors), color])
        scale.append([(index + 1) / len(colors), color])
    return scale
