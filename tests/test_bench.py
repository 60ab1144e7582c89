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


def test_rows_have_probe_zero_shot_scatter_columns(result):
    for key in ("knn_accuracy", "linear_probe_accuracy", "zero_shot_accuracy", "zero_shot_macro_f1",
                "scatter_within", "scatter_global_gap", "image_to_text_MRR"):
        assert key in result.rows[0], key


def test_scatter_columns_add_up(result):
    for row in result.rows:
        assert row["scatter_total"] == pytest.approx(row["scatter_within"] + row["scatter_between"])
        assert row["scatter_global_gap"] == pytest.approx(row["modality_gap"] ** 2 / 4, rel=1e-3)


def test_zero_shot_scores_are_fractions(result):
    for row in result.rows:
        assert 0.0 <= row["zero_shot_accuracy"] <= 1.0
        assert 0.0 <= row["zero_shot_macro_f1"] <= 1.0


def test_prompt_template_sets_cache_key():
    default = small_benchmark()
    other = small_benchmark(prompt_template="An image showing {label}.")
    assert bench.benchmark_dir(default) != bench.benchmark_dir(other)


def test_prompt_template_without_label_rejected():
    with pytest.raises(ValueError, match=r"prompt_template='a finding'.*\{label\}"):
        small_benchmark(prompt_template="a finding")


def test_method_embeddings_match_rows(result, corpus):
    from medgap_utils.metrics import modality_gap

    image_embeddings, text_embeddings = bench.method_embeddings("posthoc_clip", result.config, 1, corpus=corpus)
    row = next(row for row in result.rows if row["method"] == "posthoc_clip" and row["seed"] == 1)
    assert image_embeddings.shape == text_embeddings.shape == (32, 64)
    assert modality_gap(image_embeddings, text_embeddings) == pytest.approx(row["modality_gap"], abs=1e-6)


def test_method_embeddings_unknown_method_rejected(result, corpus):
    with pytest.raises(ValueError, match="method='siglip'"):
        bench.method_embeddings("siglip", result.config, 0, corpus=corpus)


# A captioner small enough to train in about a second.
QUICK_DECODER = (("width", 16), ("layers", 1), ("heads", 2), ("epochs", 2), ("min_steps", 1), ("batch_size", 16),
                 ("max_length", 12))


@pytest.fixture(scope="module")
def captioned(corpus, cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDGAP_CACHE", str(cache))
        config = small_benchmark(methods=("clip", "posthoc_clip"), seeds=(0,), extra_metrics=("captioning",),
                                 decoder_overrides=QUICK_DECODER)
        return run_benchmark(config, corpus=corpus, progress=False)


def test_captioning_columns_added_on_request(result, captioned):
    for setting in ("supervised", "text-only", "text-only + noise"):
        for metric in ("BLEU-4", "ROUGE-L", "CIDEr"):
            assert f"{setting}: {metric}" in captioned.rows[0], (setting, metric)
    # The tiny corpus has no modality, anatomy or side column, so there is no clinical score.
    assert not any("clinical" in key for key in captioned.rows[0])
    assert not any(":" in key for key in result.rows[0]), "captioning runs only when a benchmark names it"
    assert "text-only: CIDEr" in captioned.to_markdown()


def test_captioning_uses_posthoc_train_embeddings(captioned, corpus, cache, monkeypatch):
    from medgap_utils.captioning import DecoderConfig, evaluate_captioning
    from medgap_utils.metrics import center_modalities
    from medgap_utils.training import load_or_fit

    monkeypatch.setenv("MEDGAP_CACHE", str(cache))
    config = captioned.config
    model = load_or_fit(bench.method_config("clip", config, 0), corpus=corpus, progress=False)
    validation_image, validation_text = bench._split_embeddings(model, "validation", corpus)
    train_image, train_text, test_image, test_text = (
        embedding for split in ("train", "test") for embedding in center_modalities(
            *bench._split_embeddings(model, split, corpus),
            image_mean=validation_image.mean(0), text_mean=validation_text.mean(0)))
    expected = evaluate_captioning(train_text, list(corpus["train"]["caption"]), test_image,
                                   list(corpus["test"]["caption"]), regime="text_only", seed=0,
                                   config=DecoderConfig(**dict(QUICK_DECODER)), meteor=False, cache=False,
                                   progress=False)["metrics"]
    row = next(row for row in captioned.rows if row["method"] == "posthoc_clip")
    assert row["text-only: CIDEr"] == pytest.approx(expected["CIDEr"], abs=1e-9)
    assert row["text-only: BLEU-4"] == pytest.approx(expected["BLEU-4"], abs=1e-9)


def test_unknown_extra_metric_rejected():
    with pytest.raises(ValueError, match=r"extra_metrics=\('captions',\).*captioning"):
        small_benchmark(extra_metrics=("captions",))


def test_unknown_decoder_field_rejected():
    with pytest.raises(ValueError, match=r"decoder_overrides=.*depth.*DecoderConfig field names"):
        small_benchmark(extra_metrics=("captioning",), decoder_overrides=(("depth", 2),))


def test_captioning_flag_sets_extra_metric(monkeypatch):
    import argparse

    class Started(Exception):
        """Signal that stops the command where it would start training, carrying the config it built."""

    def start(config, force):
        raise Started(config)

    monkeypatch.setattr(bench, "run_benchmark", start)
    commands = argparse.ArgumentParser().add_subparsers()
    bench.add_bench_parser(commands)
    arguments = commands.choices["bench"].parse_args(["--profile", "ci", "--captioning", "--seeds", "0"])
    with pytest.raises(Started) as started:
        bench.run_bench_command(arguments)
    assert started.value.args[0].extra_metrics == ("captioning",)
