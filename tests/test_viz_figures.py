"""Specification of the medgap_utils.viz figures, checked on their plotly JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sklearn.decomposition import PCA

from medgap_utils.viz import (
    OKABE_ITO,
    gap_shift_figure,
    projection_figure,
    sphere_figure,
    sweep_figure,
    training_animation_figure,
    training_curves_figure,
)
from medgap_utils.viz.palette import discrete_colorscale


def paired_embeddings(count: int = 60, dim: int = 8, gap: float = 1.0, seed: int = 0):
    """Paired unit rows: shared content plus opposite offsets along axis 0."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(count, dim))
    offset = np.zeros(dim)
    offset[0] = gap
    image = content + offset
    text = content - offset + 0.2 * rng.normal(size=(count, dim))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    labels = {"anatomy": rng.choice(["chest", "head", "knee"], count).tolist()}
    captions = [f"{labels['anatomy'][row]} radiograph number {row}" for row in range(count)]
    return image.astype(np.float32), text.astype(np.float32), labels, captions


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))


def decode(values) -> np.ndarray:
    """Return trace values as numpy, whether plotly stored a list or an array."""
    return np.asarray(values, dtype=float)


# Palette

def test_palette_is_okabe_ito():
    assert set(OKABE_ITO.values()) == {
        "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
    }


def test_discrete_colorscale_has_flat_bands():
    scale = discrete_colorscale(["#111111", "#222222"])

    assert scale == [[0.0, "#111111"], [0.5, "#111111"], [0.5, "#222222"], [1.0, "#222222"]]


# Projection figure

def test_projection_marks_modality_by_shape():
    image, text, labels, captions = paired_embeddings()

    figure = projection_figure(image, text, labels, captions)

    assert figure.data[0].marker.symbol != figure.data[1].marker.symbol
    assert figure.data[0].name == "image embeddings"
    assert figure.data[1].name == "text embeddings"


def test_projection_uses_stacked_pca():
    image, text, labels, captions = paired_embeddings()
    reference = PCA(n_components=2).fit_transform(np.concatenate([image, text]).astype(np.float64))

    figure = projection_figure(image, text, labels, captions)

    ours = np.concatenate([decode(figure.data[0].x), decode(figure.data[1].x)])
    assert np.allclose(np.abs(ours), np.abs(reference[:, 0]), atol=1e-3)


def test_projection_centroids_and_gap():
    image, text, labels, captions = paired_embeddings()
    expected_gap = np.linalg.norm(image.mean(axis=0) - text.mean(axis=0))

    figure = projection_figure(image, text, labels, captions)

    image_centroid = (decode(figure.data[0].x).mean(), decode(figure.data[0].y).mean())
    assert decode(figure.data[3].x)[0] == pytest.approx(image_centroid[0], abs=1e-3)
    assert decode(figure.data[3].y)[0] == pytest.approx(image_centroid[1], abs=1e-3)
    assert f"{expected_gap:.3f}" in figure.data[5].name
    assert f"{expected_gap:.3f}" in figure.data[5].hovertemplate


def test_projection_color_dropdown_lists_labels():
    image, text, labels, captions = paired_embeddings()

    figure = projection_figure(image, text, labels, captions, color_by="anatomy")

    menu = figure.layout.updatemenus[0]
    assert [button.label for button in menu.buttons] == ["color by modality", "color by anatomy"]
    assert menu.active == 1
    anatomy_codes = menu.buttons[1].args[0]["marker.color"][0]
    names = menu.buttons[1].args[1]["coloraxis.colorbar.ticktext"]
    assert [names[code] for code in anatomy_codes] == labels["anatomy"]


def test_projection_pair_lines_join_true_pairs():
    image, text, labels, captions = paired_embeddings(count=20)

    figure = projection_figure(image, text, labels, captions, max_pair_lines=5)

    lines = figure.data[2]
    image_x, text_x = decode(figure.data[0].x), decode(figure.data[1].x)
    starts, ends, separators = lines.x[0::3], lines.x[1::3], lines.x[2::3]
    assert len(starts) == 5
    assert all(value is None for value in separators)
    for start, end in zip(starts, ends):
        row = int(np.argmin(np.abs(image_x - start)))
        assert end == pytest.approx(text_x[row], abs=1e-3)


def test_projection_pairs_toggle_buttons():
    image, text, labels, captions = paired_embeddings()

    figure = projection_figure(image, text, labels, captions, show_pairs=False)

    assert figure.data[2].visible == "legendonly"
    buttons = figure.layout.updatemenus[1].buttons
    assert buttons[0].args[0] == {"visible": True}
    assert buttons[1].args[0] == {"visible": "legendonly"}
    assert list(buttons[1].args[1]) == [2]


def test_projection_hover_shows_caption():
    image, text, labels, captions = paired_embeddings()

    figure = projection_figure(image, text, labels, captions)

    assert "radiograph number 7" in figure.data[0].text[7]
    assert "anatomy: " + labels["anatomy"][7] in figure.data[1].text[7]


def test_projection_webgl_above_threshold():
    small = paired_embeddings(count=100)
    large = paired_embeddings(count=1200)

    assert projection_figure(*small).data[0].type == "scatter"
    assert projection_figure(*large).data[0].type == "scattergl"
    assert projection_figure(*small, webgl=True).data[0].type == "scattergl"


def test_projection_3d_uses_scatter3d():
    image, text, labels, captions = paired_embeddings()

    figure = projection_figure(image, text, labels, captions, dims=3)

    assert {trace.type for trace in figure.data} == {"scatter3d"}
    assert "PC 3" in figure.layout.scene.zaxis.title.text


def test_projection_10k_points_stays_small():
    image, text, labels, _ = paired_embeddings(count=10_000, dim=16)

    figure = projection_figure(image, text, labels)

    size = len(figure.to_json())
    assert figure.data[0].type == "scattergl"
    assert figure.data[0].text is None
    assert size < 700_000, f"the 10k-pair figure is {size} bytes of JSON"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"text_embeddings": np.ones((60, 8), np.float32)}, ValueError, "L2-normalized"),
        ({"text_embeddings": np.eye(8, dtype=np.float32)[np.zeros(59, int)]}, ValueError, "same shape"),
        ({"labels": {"anatomy": ["chest"]}}, ValueError, "must have 60 values"),
        ({"labels": {"modality": ["CT"] * 60}}, ValueError, "reserved"),
        ({"captions": "one caption"}, ValueError, "captions must be"),
        ({"color_by": "finding"}, ValueError, "color_by must be one of"),
        ({"dims": 4}, ValueError, "dims must be one of"),
        ({"image_embeddings": np.full((60, 8), np.nan, np.float32)}, ValueError, "NaN"),
        ({"image_embeddings": [["a"] * 8] * 60}, TypeError, "numeric"),
    ],
)
def test_projection_rejects_bad_inputs(change, error, message):
    image, text, labels, captions = paired_embeddings()
    arguments = {"image_embeddings": image, "text_embeddings": text, "labels": labels, "captions": captions}
    arguments.update(change)

    with pytest.raises(error, match=message):
        projection_figure(**arguments)


# Training figures

def history_rows(epochs: int = 4) -> list[dict]:
    return [
        {"epoch": epoch, "train_loss": 3.0 - 0.5 * epoch, "train_loss_clip": 2.5 - 0.4 * epoch,
         "train_loss_atp": 0.3, "train_loss_cu": -1.0, "temperature": 0.07, "lr": 1e-3,
         "val_modality_gap": 1.0 - 0.2 * epoch, "val_true_pair_cosine": 0.2 + 0.1 * epoch,
         "val_true_pair_angle": 70.0 - 5 * epoch}
        for epoch in range(epochs)
    ]


def snapshot_rows(gaps=(1.5, 1.0, 0.5, 0.1)) -> list[dict]:
    rows = []
    for epoch, gap in enumerate(gaps):
        image, text, _, _ = paired_embeddings(count=40, gap=gap)
        rows.append({"epoch": epoch, "image_embeddings": image, "text_embeddings": text})
    return rows


def test_training_curves_has_a_panel_per_group():
    figure = training_curves_figure(history_rows())

    titles = [annotation.text for annotation in figure.layout.annotations]
    assert titles == ["training loss", "modality gap", "true-pair cosine", "true-pair angle",
                      "temperature", "learning rate"]
    assert figure.layout.yaxis4.title.text == "angle (degrees)"
    assert figure.layout.xaxis.title.text == "epoch (0 = before training)"


def test_training_curves_skips_missing_keys():
    history = [{"epoch": 0, "val_modality_gap": 0.9}, {"epoch": 1, "val_modality_gap": float("nan")}]

    figure = training_curves_figure(history)

    assert len(figure.data) == 1
    assert list(figure.data[0].x) == [0.0]


def test_training_curves_rejects_unknown_history():
    with pytest.raises(ValueError, match="none of the keys"):
        training_curves_figure([{"epoch": 0, "accuracy": 0.5}])
    with pytest.raises(ValueError, match="numeric 'epoch'"):
        training_curves_figure([{"val_modality_gap": 0.5}])


def test_training_animation_frames_per_snapshot():
    snapshots = snapshot_rows()

    figure = training_animation_figure(snapshots, history_rows())

    assert [frame.name for frame in figure.frames] == ["epoch 0", "epoch 1", "epoch 2", "epoch 3"]
    assert [step.label for step in figure.layout.sliders[0].steps] == ["0", "1", "2", "3"]
    play = figure.layout.updatemenus[2].buttons[0]
    assert play.args[0] is None and play.args[1]["frame"]["redraw"] is True


def test_training_animation_fits_projection_once():
    snapshots = snapshot_rows()
    stacked = np.concatenate([block for s in snapshots for block in (s["image_embeddings"], s["text_embeddings"])])
    reference = PCA(n_components=2).fit_transform(stacked.astype(np.float64))

    figure = training_animation_figure(snapshots)

    last_image_x = decode(figure.frames[3].data[0].x)
    assert np.allclose(np.abs(last_image_x), np.abs(reference[240:280, 0]), atol=1e-3)


def test_training_animation_marks_gap_from_snapshots():
    snapshots = snapshot_rows()
    gaps = [np.linalg.norm(s["image_embeddings"].mean(0) - s["text_embeddings"].mean(0)) for s in snapshots]

    figure = training_animation_figure(snapshots)

    marker_values = [frame.data[6].y[0] for frame in figure.frames]
    assert marker_values == pytest.approx(gaps, abs=1e-5)
    assert gaps[0] > gaps[-1]


def test_training_animation_marks_history_values():
    figure = training_animation_figure(snapshot_rows(), history_rows())

    assert [frame.data[7].y[0] for frame in figure.frames] == pytest.approx([0.2, 0.3, 0.4, 0.5])


def test_training_animation_frames_keep_colors():
    figure = training_animation_figure(snapshot_rows())

    for frame in figure.frames:
        assert frame.data[0].marker.color is None


def test_training_animation_frames_keep_subplot_titles():
    figure = training_animation_figure(snapshot_rows(), history_rows())
    titles = [annotation.text for annotation in figure.layout.annotations if annotation.text]

    assert titles
    for frame in figure.frames:
        # Plotly replaces annotations by position, so a frame lists the titles again, then its one gap arrow.
        assert len(frame.layout.annotations) == len(figure.layout.annotations)
        assert [annotation.text for annotation in frame.layout.annotations[:len(titles)]] == titles


def test_training_animation_colorbar_below_the_map():
    colorbar = training_animation_figure(snapshot_rows()).layout.coloraxis.colorbar

    assert colorbar.orientation == "h"
    assert colorbar.y < 0
    assert colorbar.title.text == "modality"


def test_training_animation_rejects_mismatched_snapshots():
    snapshots = snapshot_rows()
    snapshots[2] = {"epoch": 2, "image_embeddings": snapshots[2]["image_embeddings"][:10],
                    "text_embeddings": snapshots[2]["text_embeddings"][:10]}

    with pytest.raises(ValueError, match="same pairs"):
        training_animation_figure(snapshots)


# Sweeps

def sweep_table() -> pd.DataFrame:
    rows = []
    for lambda_atp in (0.0, 0.5, 1.0):
        for lambda_cu in (0.0, 1.0):
            for seed in range(3):
                rows.append({"lambda_atp": lambda_atp, "lambda_cu": lambda_cu, "seed": seed,
                             "modality_gap": 1.0 - 0.5 * lambda_atp + 0.01 * seed,
                             "i2t_R@1": 20 + 10 * lambda_atp + seed + lambda_cu})
    return pd.DataFrame(rows)


def test_sweep_averages_seeds():
    table = sweep_table()
    expected = table[table.lambda_cu == 0].groupby("lambda_atp")["i2t_R@1"].agg(["mean", "std"])

    figure = sweep_figure(table, "lambda_atp", ["modality_gap", "i2t_R@1"], slider="lambda_cu")

    trace = figure.data[1]
    assert list(trace.y) == pytest.approx(expected["mean"].tolist())
    assert list(trace.error_y.array) == pytest.approx(expected["std"].tolist())
    assert figure.layout.xaxis.title.text == "λ_ATP (weight of L_ATP)"


def test_sweep_slider_switches_curves():
    figure = sweep_figure(sweep_table(), "lambda_atp", ["modality_gap", "i2t_R@1"], slider="lambda_cu")

    steps = figure.layout.sliders[0].steps
    assert [step.label for step in steps] == ["0", "1"]
    assert steps[1].args[0]["visible"] == [False, False, True, True]
    assert [trace.visible for trace in figure.data] == [True, True, False, False]


def test_sweep_accepts_list_of_dicts_and_log_axis():
    rows = [{"temperature": t, "modality_gap": 1 / t} for t in (0.01, 0.1, 1.0)]

    figure = sweep_figure(rows, "temperature", {"gap (embedding units)": "modality_gap"})

    assert figure.layout.xaxis.type == "log"
    assert figure.layout.yaxis.title.text == "gap (embedding units)"


def test_sweep_rejects_missing_column():
    with pytest.raises(ValueError, match="no column"):
        sweep_figure(sweep_table(), "lambda_atp", ["v_measure"])


def shift_table() -> list[dict]:
    return [{"shift": shift, "i2t_R@1": 30 - 10 * shift, "v_measure": 0.5 + 0.2 * shift}
            for shift in (0.0, 0.5, 1.0)]


def test_gap_shift_slider_moves_markers():
    figure = gap_shift_figure(shift_table(), {"recall@1 (%)": ["i2t_R@1"], "V-measure (0 to 1)": ["v_measure"]})

    assert [frame.name for frame in figure.frames] == ["shift 0", "shift 0.5", "shift 1"]
    assert [frame.data[0].y[0] for frame in figure.frames] == pytest.approx([30, 25, 20])
    assert [frame.data[1].y[0] for frame in figure.frames] == pytest.approx([0.5, 0.6, 0.7])


def test_gap_shift_with_embeddings_animates_map():
    shifted = []
    for shift in (0.0, 0.5, 1.0):
        image, text, _, _ = paired_embeddings(count=30, gap=1.0 - shift)
        shifted.append({"shift": shift, "image_embeddings": image, "text_embeddings": text})

    figure = gap_shift_figure(shift_table(), ["i2t_R@1", "v_measure"], shifted)

    assert len(figure.frames) == 3
    assert figure.data[0].name == "image embeddings"
    assert [frame.data[6].y[0] for frame in figure.frames] == pytest.approx([30, 25, 20])


def test_gap_shift_rejects_unknown_shift():
    image, text, _, _ = paired_embeddings(count=10)
    shifted = [{"shift": 0.25, "image_embeddings": image, "text_embeddings": text}]

    with pytest.raises(ValueError, match="lacks"):
        gap_shift_figure(shift_table(), ["i2t_R@1"], shifted)


# Sphere

def cone_points(axis, half_angle_degrees, count, seed):
    rng = np.random.default_rng(seed)
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    points = axis + np.tan(np.radians(half_angle_degrees)) * rng.uniform(-0.5, 0.5, size=(count, 3))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_sphere_cone_rims_contain_quantile():
    image = cone_points([1, 0, 0], 30, 80, seed=0)
    text = cone_points([0, 1, 0], 30, 80, seed=1)
    axis = image.mean(0) / np.linalg.norm(image.mean(0))
    expected = np.quantile(np.degrees(np.arccos(np.clip(image @ axis, -1, 1))), 0.9)

    figure = sphere_figure(image, text, cone_quantile=0.9)

    rim = next(trace for trace in figure.data if trace.name.startswith("image cone"))
    rim_points = np.stack([decode(rim.x), decode(rim.y), decode(rim.z)], axis=1)
    assert np.allclose(np.linalg.norm(rim_points, axis=1), 1.0, atol=1e-3)
    assert np.degrees(np.arccos(rim_points @ axis)) == pytest.approx(np.full(len(rim_points), expected), abs=0.05)


def test_sphere_menus_target_shifted_traces():
    image = cone_points([1, 0, 0], 30, 20, seed=0)
    text = cone_points([0, 1, 0], 30, 20, seed=1)

    figure = sphere_figure(image, text)

    assert figure.data[0].type == "surface"
    assert list(figure.layout.updatemenus[0].buttons[0].args[2]) == [1, 2]
    assert list(figure.layout.updatemenus[1].buttons[0].args[1]) == [3]
    assert figure.data[3].name == "true pairs"


def test_sphere_rejects_non_3d():
    image, text, _, _ = paired_embeddings(dim=4)

    with pytest.raises(ValueError, match="3 columns"):
        sphere_figure(image, text)


def test_figures_serialize_to_json():
    image, text, labels, captions = paired_embeddings()
    figures = [
        projection_figure(image, text, labels, captions),
        training_animation_figure(snapshot_rows(), history_rows()),
        sweep_figure(sweep_table(), "lambda_atp", ["modality_gap"]),
    ]

    for figure in figures:
        assert isinstance(figure, go.Figure)
        assert json.loads(figure.to_json())["data"]
