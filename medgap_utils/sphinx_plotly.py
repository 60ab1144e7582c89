"""Draw plotly figures in the static book without a CDN.

The book is executed with ``PLOTLY_RENDERER=plotly_mimetype``, so each figure
is stored in the notebook as its JSON mime bundle
(``application/vnd.plotly.v1+json``). myst-nb hands that bundle to
:class:`PlotlyMimeRenderer` (registered under the ``myst_nb.mime_renderers``
entry point in ``pyproject.toml``), which emits a ``<div>`` and one call to
``Plotly.newPlot``. The page loads ``plotly.min.js`` once from the site's own
static folder, so a page with figures stays small and renders offline.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

from docutils import nodes

PLOTLY_MIME_TYPE = "application/vnd.plotly.v1+json"


def figure_html(figure: dict[str, Any], div_id: str | None = None) -> str:
    """Return the HTML that draws one plotly figure given as its JSON dict.

    ``figure`` contains ``data``, ``layout`` and optionally ``frames`` and
    ``config``. The markup assumes that ``window.Plotly`` is already loaded.
    """
    div_id = div_id or f"plotly-{uuid.uuid4().hex[:12]}"
    payload = {
        "data": figure.get("data", []),
        "layout": figure.get("layout", {}),
        "frames": figure.get("frames", []),
        "config": {"responsive": True, "displaylogo": False, **figure.get("config", {})},
    }
    # "</" inside a <script> element would end the element early.
    payload_json = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div id="{div_id}" class="medgap-plotly"></div>\n'
        f'<script>Plotly.newPlot("{div_id}", {payload_json});</script>\n'
    )


class PlotlyMimeRenderer:
    """myst-nb mime renderer plugin for plotly's JSON mime bundle."""

    mime_priority_overrides: ClassVar[list[tuple[str, str, int]]] = [
        ("html", PLOTLY_MIME_TYPE, 5),
        ("dirhtml", PLOTLY_MIME_TYPE, 5),
        ("singlehtml", PLOTLY_MIME_TYPE, 5),
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if inline or data.mime_type != PLOTLY_MIME_TYPE:
            return None
        figure = data.content
        if isinstance(figure, (str, bytes)):
            figure = json.loads(figure)
        html = figure_html(figure)
        return [nodes.raw(text=html, format="html", classes=["output", "text_html"])]
