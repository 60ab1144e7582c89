"""Specification of medgap_utils.viz.projections: PCA, t-SNE, UMAP and their cache."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from medgap_utils.viz import projections
from medgap_utils.viz.projections import embedding_hash, project


def unit_rows(count: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_pca_matches_sklearn_up_to_sign():
    rows = unit_rows(50, 8)
    reference = PCA(n_components=2).fit_transform(rows.astype(np.float64))

    projection = project(rows, "pca", 2)

    assert projection.coordinates.shape == (50, 2)
    assert projection.coordinates.dtype == np.float32
    for component in range(2):
        ours, theirs = projection.coordinates[:, component], reference[:, component]
        assert np.allclose(np.abs(ours), np.abs(theirs), atol=1e-5)
        assert np.allclose(ours, theirs, atol=1e-5) or np.allclose(ours, -theirs, atol=1e-5)


def test_pca_explained_variance_in_axis_titles():
    rows = unit_rows(40, 6)
    share = PCA(n_components=3).fit(rows).explained_variance_ratio_

    titles = project(rows, "pca", 3).axis_titles()

    assert titles == [f"PC {index + 1} ({share[index] * 100:.1f}% of variance)" for index in range(3)]


def test_pca_pads_when_dim_below_components():
    rows = unit_rows(10, 2)

    projection = project(rows, "pca", 3)

    assert projection.coordinates.shape == (10, 3)
    assert np.all(projection.coordinates[:, 2] == 0)


def test_tsne_is_cached_by_embedding_hash(monkeypatch, private_cache):
    rows = unit_rows(30, 5)
    calls = []
    real_tsne = projections._tsne
    monkeypatch.setattr(projections, "_tsne", lambda *args: calls.append(args) or real_tsne(*args))

    first = project(rows, "tsne", 2, seed=0)
    second = project(rows.copy(), "tsne", 2, seed=0)

    assert len(calls) == 1
    assert np.array_equal(first.coordinates, second.coordinates)
    assert len(list((private_cache / "projections").glob("tsne-*.npy"))) == 1
    assert first.axis_titles() == ["t-SNE 1 (arbitrary units)", "t-SNE 2 (arbitrary units)"]


def test_tsne_cache_key_changes_with_data_and_seed(monkeypatch, private_cache):
    monkeypatch.setattr(projections, "_tsne", lambda rows, components, seed: rows[:, :components] + seed)
    rows = unit_rows(20, 4)

    project(rows, "tsne", 2, seed=0)
    project(rows, "tsne", 2, seed=1)
    project(unit_rows(20, 4, seed=5), "tsne", 2, seed=0)

    assert len(list((private_cache / "projections").glob("tsne-*.npy"))) == 3


def test_umap_projects_and_caches(private_cache):
    pytest.importorskip("umap")
    rows = unit_rows(40, 6)

    projection = project(rows, "umap", 2, seed=0)

    assert projection.coordinates.shape == (40, 2)
    assert np.isfinite(projection.coordinates).all()
    assert len(list((private_cache / "projections").glob("umap-*.npy"))) == 1


def test_embedding_hash_sees_values_and_shape():
    rows = unit_rows(6, 4)

    assert embedding_hash(rows) == embedding_hash(rows.astype(np.float64))
    assert embedding_hash(rows) != embedding_hash(rows[::-1])
    assert embedding_hash(rows) != embedding_hash(rows.reshape(4, 6))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"method": "mds"}, "method must be one of"),
        ({"n_components": 4}, "n_components must be 2 or 3"),
    ],
)
def test_project_rejects_bad_options(arguments, message):
    with pytest.raises(ValueError, match=message):
        project(unit_rows(10, 4), **arguments)


def test_project_rejects_too_few_rows():
    with pytest.raises(ValueError, match="N >= 4"):
        project(unit_rows(3, 4), "pca", 2)
