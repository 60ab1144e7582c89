"""Book build support: duplicate scripts removed, plotly figures emitted as HTML."""

from __future__ import annotations

import json
from types import SimpleNamespace

from sphinx.builders.html._assets import _JavaScript

from medgap_utils.sphinx_ext import remove_duplicate_scripts
from medgap_utils.sphinx_plotly import PLOTLY_MIME_TYPE, PlotlyMimeRenderer, figure_html


def test_duplicate_inline_scripts_removed():
    body = 'const THEBE_JS_URL = "x";'
    scripts = [_JavaScript(None, body=body), _JavaScript("a.js"), _JavaScript("", body=body)]
    context = {"script_files": scripts}
    remove_duplicate_scripts(None, "page", "page.html", context, None)
    assert [script.filename for script in context["script_files"]] == [None, "a.js"]


def test_distinct_scripts_kept():
    scripts = [_JavaScript(None, body="var a = 1;"), _JavaScript(None, body="var b = 2;")]
    context = {"script_files": scripts}
    remove_duplicate_scripts(None, "page", "page.html", context, None)
    assert len(context["script_files"]) == 2


def test_figure_html_escapes_script_end():
    html = figure_html({"data": [{"type": "scatter", "text": ["</script>"]}], "layout": {}}, div_id="fig")
    assert html.count("</script>") == 1
    assert '<div id="fig"' in html


def test_figure_html_keeps_frames():
    figure = {"data": [], "layout": {}, "frames": [{"name": "1", "data": []}]}
    html = figure_html(figure, div_id="fig")
    payload = json.loads(html.split('Plotly.newPlot("fig", ')[1].rsplit(");</script>", 1)[0])
    assert payload["frames"] == [{"name": "1", "data": []}]


def test_renderer_ignores_other_mime_types():
    data = SimpleNamespace(mime_type="text/html", content="<p></p>")
    assert PlotlyMimeRenderer.handle_mime(None, data, inline=False) is None


def test_renderer_emits_raw_html():
    data = SimpleNamespace(mime_type=PLOTLY_MIME_TYPE, content={"data": [], "layout": {}})
    (node,) = PlotlyMimeRenderer.handle_mime(None, data, inline=False)
    assert node["format"] == "html"
    assert "Plotly.newPlot" in node.astext()
