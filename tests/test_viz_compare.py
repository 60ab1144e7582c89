"""Specification of medgap_utils.viz.comparison_figure: side-by-side embedding maps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from medgap_utils.viz import comparison_figure


def unit_rows(count: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dim)) + shift
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def spaces():
    return {
        "model A": (unit_rows(40, 8, 0, 1.0), unit_rows(40, 8, 1, -1.0)),
        "model B": (unit_rows(40, 16, 2), unit_rows(40, 16, 3)),
    }


@pytest.fixture
def highlights():
    return {
        "model A": (unit_rows(3, 8, 4), unit_rows(3, 8, 5)),
        "model B": (unit_rows(3, 16, 6), unit_rows(3, 16, 7)),
    }


def test_comparison_panel_titles_and_traces(spaces):
    figure = comparison_figure(spaces, {"group": ["a", "b"] * 20})

    titles = [annotation.text for annotation in figure.layout.annotations if annotation.text]
    assert titles == ["model A", "model B"]
    assert len(figure.data) == 12
    assert [trace.xaxis for trace in figure.data] == ["x"] * 6 + ["x2"] * 6


def test_comparison_gap_vector_names_each_panel(spaces):
    figure = comparison_figure(spaces)

    image, text = spaces["model B"]
    gap = np.linalg.norm(image.mean(axis=0) - text.mean(axis=0))
    assert figure.data[11].name == f"model B: gap vector (‖gap‖ = {gap:.3f})"


def test_comparison_projects_each_space_separately(spaces):
    figure = comparison_figure(spaces)

    image, text = spaces["model B"]
    reference = PCA(n_components=2).fit_transform(np.concatenate([image, text]).astype(np.float64))
    drawn = np.asarray(figure.data[6].x, dtype=np.float64)
    assert np.allclose(np.abs(drawn), np.abs(reference[:40, 0]), atol=1e-3)


def test_comparison_highlights_share_projection(spaces, highlights):
    figure = comparison_figure(spaces, highlights=highlights, highlight_names=["CT", "MR", "MR 2"])

    assert len(figure.data) == 18
    image, text = spaces["model A"]
    stacked = np.concatenate([image, text, *highlights["model A"]]).astype(np.float64)
    reference = PCA(n_components=2).fit_transform(stacked)
    highlighted_images = figure.data[6]
    assert highlighted_images.marker.symbol == "star"
    assert list(highlighted_images.text) == ["CT", "MR", "MR 2"]
    assert np.allclose(np.abs(np.asarray(highlighted_images.x, dtype=np.float64)), np.abs(reference[80:83, 0]),
                       atol=1e-3)


def test_comparison_color_menu_restyles_every_panel(spaces):
    figure = comparison_figure(spaces, {"group": ["a", "b"] * 20})

    color_menu, pairs_menu = figure.layout.updatemenus
    for button in color_menu.buttons:
        restyled = button.args[2]
        assert list(restyled) == [0, 1, 6, 7]
        assert len(button.args[0]["marker.color"]) == len(restyled)
    for button in pairs_menu.buttons:
        assert list(button.args[1]) == [2, 8]


def test_comparison_colorbar_names_initial_column(spaces):
    figure = comparison_figure(spaces, {"group": ["a", "b"] * 20}, color_by="group")

    assert figure.layout.coloraxis.colorbar.title.text == "group"
    assert list(figure.layout.coloraxis.colorbar.ticktext) == ["a", "b"]


def test_comparison_rejects_unequal_rows(spaces):
    spaces["model B"] = (unit_rows(39, 16, 2), unit_rows(39, 16, 3))

    with pytest.raises(ValueError, match="same pairs"):
        comparison_figure(spaces)


def test_comparison_rejects_highlight_keys(spaces, highlights):
    del highlights["model B"]

    with pytest.raises(ValueError, match="same keys as spaces"):
        comparison_figure(spaces, highlights=highlights)


def test_comparison_rejects_highlight_dimension(spaces, highlights):
    highlights["model A"] = (unit_rows(3, 16, 4), unit_rows(3, 16, 5))

    with pytest.raises(ValueError, match="8 columns"):
        comparison_figure(spaces, highlights=highlights)


def test_comparison_rejects_names_count(spaces, highlights):
    with pytest.raises(ValueError, match="highlight_names must have 3"):
        comparison_figure(spaces, highlights=highlights, highlight_names=["CT"])


def test_comparison_rejects_names_without_highlights(spaces):
    with pytest.raises(ValueError, match="without highlights"):
        comparison_figure(spaces, highlight_names=["CT"])


def test_comparison_rejects_non_mapping():
    with pytest.raises(TypeError, match="spaces must be"):
        comparison_figure([(unit_rows(5, 4, 0), unit_rows(5, 4, 1))])
