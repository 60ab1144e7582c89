"""The benchmark runner: table, statistics, files, cache and added columns."""

import json

import numpy as np
import pytest

from medgap_utils import bench
from medgap_utils.bench import BenchmarkConfig, run_benchmark
from test_training_end_to_end import tiny_split

import datasets


@pytest.fixture(scope="module")
def corpus():
    return datasets.DatasetDict({"train": tiny_split(64, 0), "validation": tiny_split(32, 1),
                                 "test": tiny_split(32, 2)})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated_cache(cache, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(cache))


def small_benchmark(**fields) -> BenchmarkConfig:
    defaults = dict(profile="ci", methods=("clip", "clip_atp_cu", "posthoc_clip"), seeds=(0, 1),
                    label="finding", overrides=(("train.epochs", 2), ("train.batch_size", 32)),
                    backbone_overrides=(("train.epochs", 1), ("train.batch_size", 32)))
    return BenchmarkConfig(**{**defaults, **fields})


@pytest.fixture(scope="module")
def result(corpus, cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDGAP_CACHE", str(cache))
        return run_benchmark(small_benchmark(), corpus=corpus, progress=False)


def test_one_row_per_method_and_seed(result):
    assert [(row["method"], row["seed"]) for row in result.rows] == [
        ("clip", 0), ("clip", 1), ("clip_atp_cu", 0), ("clip_atp_cu", 1), ("posthoc_clip", 0), ("posthoc_clip", 1)]


def test_rows_have_every_metric_family(result):
    for key in ("modality_gap", "true_pair_cosine", "image_to_text_R@1", "text_to_image_R@10", "v_measure", "ari"):
        assert key in result.rows[0], key


def test_summary_is_mean_and_sample_std(result):
    values = [row["modality_gap"] for row in result.rows if row["method"] == "clip_atp_cu"]
    entry = next(entry for entry in result.summary() if entry["method"] == "clip_atp_cu")
    assert entry["modality_gap_mean"] == pytest.approx(np.mean(values))
    assert entry["modality_gap_std"] == pytest.approx(np.std(values, ddof=1))


def test_posthoc_shrinks_clip_gap(result):
    summary = {entry["method"]: entry for entry in result.summary()}
    assert summary["posthoc_clip"]["modality_gap_mean"] < summary["clip"]["modality_gap_mean"]


def test_markdown_has_mean_std_cells(result):
    markdown = result.to_markdown()
    assert markdown.splitlines()[0].startswith("| method | modality_gap ↓")
    assert "CLIP + ATP + CU" in markdown
    assert " ± " in markdown


def test_files_written_to_cache(result):
    directory = bench.benchmark_dir(result.config)
    stored = json.loads((directory / "results.json").read_text())
    assert len(stored["rows"]) == 6
    assert (directory / "results.md").read_text() == result.to_markdown()
    assert (directory / "figure.html").stat().st_size > 1000


def test_figure_has_metric_menu(result):
    figure = result.figure()
    assert len(figure.data) == len(figure.layout.updatemenus[0].buttons)


def test_cached_table_reused(result, corpus, monkeypatch):
    monkeypatch.setattr(bench, "_split_embeddings", lambda *args: pytest.fail("re-evaluated a cached table"))
    again = run_benchmark(small_benchmark(), corpus=corpus, progress=False)
    assert again.rows == result.rows


def test_registered_metric_adds_column(result, corpus, monkeypatch):
    monkeypatch.setitem(bench.METRIC_FUNCTIONS, "count", lambda evaluation: {"pairs": len(evaluation.captions)})
    extended = run_benchmark(small_benchmark(), corpus=corpus, progress=False)
    assert {row["pairs"] for row in extended.rows} == {32}
    assert extended.rows[0]["modality_gap"] == pytest.approx(result.rows[0]["modality_gap"])


def test_unknown_method_rejected():
    with pytest.raises(ValueError, match=r"methods=\('siglip',\).*clip_atp_cu"):
        BenchmarkConfig(profile="ci", methods=("siglip",))


def test_unknown_label_rejected(corpus):
    with pytest.raises(ValueError, match="label='organ'"):
        run_benchmark(small_benchmark(label="organ"), corpus=corpus, progress=False)
