"""Specification of the live retraining panels and their static fallback."""

from __future__ import annotations

import sys

import numpy as np
import plotly.graph_objects as go
import pytest

from medgap_utils.viz import Control, retrain_panel
from medgap_utils.viz.panels import RetrainPanel, runs_table_html


def fake_retrain(lambda_atp: float, lambda_cu: float, temperature: float) -> dict:
    """Embeddings whose gap shrinks as lambda_atp grows, like ATP does."""
    rng = np.random.default_rng(0)
    content = rng.normal(size=(30, 6))
    offset = np.zeros(6)
    offset[0] = 1.0 / (1.0 + lambda_atp)
    image = content + offset
    text = content - offset
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    gap = float(np.linalg.norm(image.mean(0) - text.mean(0)))
    return {"image_embeddings": image, "text_embeddings": text,
            "metrics": {"modality_gap": gap, "temperature_used": temperature}}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))


def test_panel_outside_colab_returns_fallback():
    fallback = go.Figure()

    assert "google.colab" not in sys.modules
    assert retrain_panel(fake_retrain, fallback) is fallback


def test_panel_in_colab_is_a_widget(monkeypatch):
    import ipywidgets

    monkeypatch.setitem(sys.modules, "google.colab", object())

    panel = retrain_panel(fake_retrain, go.Figure())

    assert isinstance(panel, ipywidgets.VBox)


def test_panel_run_records_values_and_metrics():
    panel = RetrainPanel(fake_retrain, {
        "lambda_atp": Control(0, 2, 0.1, 0.0, "λ_ATP"),
        "lambda_cu": Control(0, 2, 0.1, 0.0, "λ_CU"),
        "temperature": Control(-2, 0, 0.1, 0.07, "τ", log=True),
    })

    panel.run()
    panel.sliders["lambda_atp"].value = 1.0
    panel.run()

    assert [run["lambda_atp"] for run in panel.runs] == [0.0, 1.0]
    assert panel.runs[0]["temperature"] == pytest.approx(0.07)
    assert panel.runs[1]["modality_gap"] < panel.runs[0]["modality_gap"]
    assert panel.figure.data[0].name == "image embeddings"
    assert "Run 2 finished" in panel.status.value
    assert panel.table.value.count("<tr>") == 3


def test_panel_reports_failed_retrain(caplog):
    def failing_retrain(**values):
        raise RuntimeError("out of memory")

    panel = RetrainPanel(failing_retrain, {"lambda_atp": Control(0, 1, 0.1, 0.5, "λ_ATP")})

    panel.run()

    assert "out of memory" in panel.status.value
    assert panel.runs == []
    assert panel.button.disabled is False
    assert "Retraining with" in caplog.text


def test_panel_rejects_bad_arguments():
    with pytest.raises(TypeError, match="retrain must be a callable"):
        retrain_panel(None, go.Figure())
    with pytest.raises(TypeError, match="fallback must be a plotly Figure"):
        retrain_panel(fake_retrain, {"data": []})
    with pytest.raises(ValueError, match="minimum < maximum"):
        retrain_panel(fake_retrain, go.Figure(), controls={"lambda_atp": Control(1, 1, 0.1, 1, "λ")})


def test_runs_table_lists_every_key():
    html = runs_table_html([{"a": 1.0}, {"a": 2.0, "b": 0.5}])

    assert "<th>run</th><th>a</th><th>b</th>" in html
    assert "<tr><td>1</td><td>1</td><td></td></tr>" in html
