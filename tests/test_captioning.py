"""Caption decoder: tokenizer, training, decoding, caching, evaluation and the benchmark."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from medgap_utils.captioning import (
    TEXT_ONLY_CEILING,
    CaptionDecoder,
    Captioner,
    CaptioningSetting,
    DecoderConfig,
    EmbeddingRun,
    WordTokenizer,
    beam_search,
    benchmark_captioning,
    captioning_row,
    evaluate_captioning,
    greedy_decode,
    train_captioner,
)
from medgap_utils.captioning.benchmark import SUPERVISED, TEXT_ONLY

CAPTIONS = [
    "Chest CT: a 12 mm nodule in the left lung.",
    "Brain MRI with no acute abnormality.",
    "Right pleural effusion on chest X-ray.",
    "Abdominal CT showing free fluid.",
    "Left knee radiograph: fracture of the distal femur.",
    "Unremarkable chest radiograph.",
]

VOCABULARY = {
    "modality": {"CT": ["CT"], "MRI": ["MRI"], "radiograph": ["radiograph", "X-ray"]},
    "anatomy": {"chest": ["chest", "lung"], "head": ["brain"], "abdomen": ["abdominal"], "knee": ["knee"]},
    "finding": {"normal": ["unremarkable", "no acute abnormality"], "nodule": ["nodule"],
                "pleural effusion": ["pleural effusion"], "free fluid": ["free fluid"], "fracture": ["fracture"]},
    "side": {"right": ["right"], "left": ["left"]},
}
LABELS = {
    "modality": ["CT", "MRI", "radiograph", "CT", "radiograph", "radiograph"],
    "anatomy": ["chest", "head", "chest", "abdomen", "knee", "chest"],
    "finding": ["nodule", "normal", "pleural effusion", "free fluid", "fracture", "normal"],
    "side": ["left", "none", "right", "none", "left", "none"],
}

# Small enough to overfit six captions in about a second on one CPU thread.
TINY = DecoderConfig(min_steps=1, width=32, layers=1, heads=2, prefix_length=2, max_length=16, dropout=0.0,
                     epochs=100, batch_size=2, learning_rate=5e-3)


def unit_rows(count: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(count, dim, generator=generator), dim=-1)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def overfit_captioner() -> Captioner:
    return train_captioner(unit_rows(len(CAPTIONS)), CAPTIONS, config=TINY, seed=0, cache=False, progress=False)


# ---------------------------------------------------------------------------
# Tokenizer


def test_tokenizer_roundtrip_restores_punctuation():
    tokenizer = WordTokenizer.fit(["Chest CT: a 12 mm nodule (x), left lung."])
    assert tokenizer.decode(tokenizer.encode("Chest CT: a 12 mm nodule (arrow), left lung.")) == (
        "chest ct: a 12 mm nodule (<unk>), left lung."
    )


def test_tokenizer_orders_by_frequency():
    tokenizer = WordTokenizer.fit(["b a", "a c", "a b"])
    assert tokenizer.words == ["<pad>", "<eos>", "<unk>", "a", "b", "c"]


def test_tokenizer_limits_vocabulary():
    tokenizer = WordTokenizer.fit(["b a", "a c", "a b"], max_size=4)
    assert tokenizer.words == ["<pad>", "<eos>", "<unk>", "a"]
    assert WordTokenizer.fit(["b a", "a c", "a b"], min_frequency=2).words[3:] == ["a", "b"]


def test_tokenizer_batch_truncates_and_keeps_eos():
    tokenizer = WordTokenizer.fit(["one two three four"])
    batch = tokenizer.encode_batch(["one two three four", "two"], max_length=3)
    assert batch.tolist() == [
        [tokenizer.ids["one"], tokenizer.ids["two"], tokenizer.eos_id],
        [tokenizer.ids["two"], tokenizer.eos_id, tokenizer.pad_id],
    ]


def test_tokenizer_decode_stops_at_eos():
    tokenizer = WordTokenizer.fit(["a b"])
    ids = [tokenizer.ids["a"], tokenizer.eos_id, tokenizer.ids["b"]]
    assert tokenizer.decode(ids) == "a"


def test_tokenizer_rejects_bad_vocabulary():
    with pytest.raises(ValueError, match="must start with"):
        WordTokenizer(["a", "<pad>", "<eos>", "<unk>"])


# ---------------------------------------------------------------------------
# Training and decoding


def test_decoder_overfits_handful_greedy(overfit_captioner):
    expected = [WordTokenizer.fit([c]).decode(WordTokenizer.fit([c]).encode(c)) for c in CAPTIONS]
    assert overfit_captioner.generate(unit_rows(len(CAPTIONS)), beam_size=1) == expected


def test_decoder_overfits_handful_beam(overfit_captioner):
    predictions = overfit_captioner.generate(unit_rows(len(CAPTIONS)), beam_size=3)
    assert predictions == [caption.lower() for caption in CAPTIONS]


def test_training_loss_decreases(overfit_captioner):
    assert overfit_captioner.losses[-1] < 0.05 * overfit_captioner.losses[0]


def test_beam_of_one_equals_greedy(overfit_captioner):
    embeddings = unit_rows(10, seed=3)
    decoder, tokenizer = overfit_captioner.decoder, overfit_captioner.tokenizer
    greedy = greedy_decode(decoder, embeddings, eos_id=tokenizer.eos_id, max_length=16)
    beam = beam_search(decoder, embeddings, eos_id=tokenizer.eos_id, max_length=16, beam_size=1)
    assert greedy == beam


def test_beam_scores_at_least_greedy(overfit_captioner):
    # Length-normalized log-probability, the quantity beam search ranks by.
    def normalized_log_probability(row: torch.Tensor, ids: list[int]) -> float:
        ids = ids + [tokenizer.eos_id]
        with torch.no_grad():
            logits = decoder(row[None], torch.tensor([ids[:-1]], dtype=torch.long))[0]
        log_probabilities = torch.log_softmax(logits, dim=-1)
        return float(sum(log_probabilities[i, token] for i, token in enumerate(ids))) / len(ids)

    decoder, tokenizer = overfit_captioner.decoder, overfit_captioner.tokenizer
    embeddings = unit_rows(12, seed=4)
    greedy = greedy_decode(decoder, embeddings, eos_id=tokenizer.eos_id, max_length=15)
    beam = beam_search(decoder, embeddings, eos_id=tokenizer.eos_id, max_length=15, beam_size=4)
    for row, greedy_ids, beam_ids in zip(embeddings, greedy, beam):
        assert normalized_log_probability(row, beam_ids) >= normalized_log_probability(row, greedy_ids) - 1e-5


def test_generation_respects_max_length(overfit_captioner):
    for beam_size in (1, 3):
        captions = overfit_captioner.generate(unit_rows(len(CAPTIONS)), beam_size=beam_size, max_length=3)
        assert all(len(caption.split()) <= 3 for caption in captions), captions


def test_generation_rejects_wrong_dimension(overfit_captioner):
    with pytest.raises(ValueError, match="trained on dimension 16"):
        overfit_captioner.generate(unit_rows(2, dim=8))


def test_generation_rejects_unnormalized(overfit_captioner):
    with pytest.raises(ValueError, match="L2-normalized"):
        overfit_captioner.generate(2 * unit_rows(2))


def test_training_is_deterministic():
    config = DecoderConfig(min_steps=1, width=16, layers=1, heads=2, epochs=2, batch_size=4, max_length=16)
    runs = [train_captioner(unit_rows(6), CAPTIONS, config=config, seed=seed, cache=False, progress=False)
            for seed in (0, 0, 1)]
    assert runs[0].losses == runs[1].losses
    assert runs[0].generate(unit_rows(6)) == runs[1].generate(unit_rows(6))
    assert runs[0].losses != runs[2].losses


def test_training_leaves_global_state_alone():
    config = DecoderConfig(min_steps=1, width=16, layers=1, heads=2, epochs=1, batch_size=4, max_length=16)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_captioner(unit_rows(6), CAPTIONS, config=config, noise_std=0.1, cache=False, progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_noise_changes_training():
    config = DecoderConfig(min_steps=1, width=16, layers=1, heads=2, epochs=2, batch_size=4, max_length=16, dropout=0.0)
    clean = train_captioner(unit_rows(6), CAPTIONS, config=config, cache=False, progress=False)
    noisy = train_captioner(unit_rows(6), CAPTIONS, config=config, noise_std=0.5, cache=False, progress=False)
    assert clean.losses != noisy.losses


def test_training_rejects_mismatched_captions():
    with pytest.raises(ValueError, match="captions has 6 items but embeddings has 5 rows"):
        train_captioner(unit_rows(5), CAPTIONS, config=TINY, cache=False)


def test_training_rejects_empty_caption():
    with pytest.raises(ValueError, match=r"captions\[1\] is empty"):
        train_captioner(unit_rows(2), ["chest ct", "  "], config=TINY, cache=False)


def test_training_rejects_negative_noise():
    with pytest.raises(ValueError, match="noise_std"):
        train_captioner(unit_rows(6), CAPTIONS, config=TINY, noise_std=-0.1, cache=False)


def test_config_rejects_heads_not_dividing_width():
    with pytest.raises(ValueError, match="must divide width"):
        DecoderConfig(width=30, heads=4)


def test_decoder_logits_shape():
    decoder = CaptionDecoder(16, 20, DecoderConfig(min_steps=1, width=16, heads=2, prefix_length=3, max_length=8))
    logits = decoder(unit_rows(4), torch.zeros(4, 5, dtype=torch.long))
    assert logits.shape == (4, 6, 20)


# ---------------------------------------------------------------------------
# Saving and caching


def test_save_and_load_roundtrip(overfit_captioner, tmp_path):
    path = overfit_captioner.save(tmp_path / "captioner.pt")
    loaded = Captioner.load(path)
    assert loaded.generate(unit_rows(len(CAPTIONS))) == overfit_captioner.generate(unit_rows(len(CAPTIONS)))
    assert loaded.tokenizer.words == overfit_captioner.tokenizer.words
    assert loaded.losses == overfit_captioner.losses


def test_train_captioner_reuses_cache():
    config = DecoderConfig(min_steps=1, width=16, layers=1, heads=2, epochs=1, batch_size=4, max_length=16)
    first = train_captioner(unit_rows(6), CAPTIONS, config=config, progress=False)
    second = train_captioner(unit_rows(6), CAPTIONS, config=config, progress=False)
    assert not math.isnan(first.train_seconds)
    assert math.isnan(second.train_seconds)
    assert second.losses == first.losses


# ---------------------------------------------------------------------------
# Evaluation


def test_evaluate_captioning_reports_metrics():
    embeddings = unit_rows(len(CAPTIONS))
    result = evaluate_captioning(embeddings, CAPTIONS, embeddings, CAPTIONS, config=TINY, labels=LABELS,
                                 vocabulary=VOCABULARY, meteor=False, num_examples=3, progress=False)
    metrics = result["metrics"]
    assert metrics["BLEU-4"] == pytest.approx(1.0)
    assert metrics["ROUGE-L"] == pytest.approx(1.0)
    assert metrics["clinical accuracy"] == 1.0
    assert "METEOR" not in metrics
    assert [example["index"] for example in result["examples"]] == [0, 2, 5]
    assert result["examples"][0]["finding"] == "nodule"
    assert len(result["predictions"]) == len(CAPTIONS)


def test_evaluate_captioning_is_cached():
    embeddings = unit_rows(len(CAPTIONS))
    config = DecoderConfig(min_steps=1, width=16, layers=1, heads=2, epochs=1, batch_size=4, max_length=16)
    first = evaluate_captioning(embeddings, CAPTIONS, embeddings, CAPTIONS, config=config, meteor=False, progress=False)
    second = evaluate_captioning(embeddings, CAPTIONS, embeddings, CAPTIONS, config=config, meteor=False, progress=False)
    assert second == first
    other = evaluate_captioning(embeddings, CAPTIONS, embeddings, CAPTIONS, config=config, meteor=False,
                                seed=1, progress=False)
    assert other["key"] != first["key"]


def test_evaluate_captioning_rejects_unknown_regime():
    with pytest.raises(ValueError, match="regime must be one of"):
        evaluate_captioning(unit_rows(6), CAPTIONS, unit_rows(6), CAPTIONS, regime="zero_shot")


def test_evaluate_captioning_rejects_dimension_mismatch():
    with pytest.raises(ValueError, match="share one space"):
        evaluate_captioning(unit_rows(6), CAPTIONS, unit_rows(6, dim=8), CAPTIONS)


def test_text_only_decoder_pays_for_the_gap():
    # Text embeddings: one unit vector per caption. Image embeddings: the same
    # vectors moved along a shared gap direction and re-normalized, which
    # leaves a true-pair cosine of about 0.3, as in CLIP-trained spaces.
    text = unit_rows(len(CAPTIONS), seed=5)
    gap = unit_rows(1, seed=6)
    image = torch.nn.functional.normalize(text + 3.0 * gap, dim=-1)
    on_text = evaluate_captioning(text, CAPTIONS, text, CAPTIONS, regime="text_only", config=TINY,
                                  meteor=False, progress=False)
    on_image = evaluate_captioning(text, CAPTIONS, image, CAPTIONS, regime="text_only", config=TINY,
                                   meteor=False, progress=False)
    supervised = evaluate_captioning(image, CAPTIONS, image, CAPTIONS, regime="supervised", config=TINY,
                                     meteor=False, progress=False)
    assert on_text["metrics"]["ROUGE-L"] == pytest.approx(1.0)
    assert supervised["metrics"]["ROUGE-L"] == pytest.approx(1.0)
    assert on_image["metrics"]["ROUGE-L"] < 0.9


# ---------------------------------------------------------------------------
# Benchmark


def small_runs() -> dict[str, list[EmbeddingRun]]:
    runs = {}
    for offset, model in enumerate(("CLIP", "CLIP + ATP + CU")):
        runs[model] = [
            EmbeddingRun(
                train_image_embeddings=unit_rows(6, seed=10 * offset + seed),
                train_text_embeddings=unit_rows(6, seed=10 * offset + seed + 100),
                test_image_embeddings=unit_rows(6, seed=10 * offset + seed),
                test_text_embeddings=unit_rows(6, seed=10 * offset + seed + 100),
                seed=seed,
            )
            for seed in (0, 1)
        ]
    return runs


QUICK = DecoderConfig(min_steps=1, width=16, layers=1, heads=2, epochs=2, batch_size=4, max_length=12)


def test_benchmark_table_has_mean_and_std():
    settings = (SUPERVISED, TEXT_ONLY, TEXT_ONLY_CEILING)
    benchmark = benchmark_captioning(small_runs(), CAPTIONS, CAPTIONS, test_labels=LABELS, vocabulary=VOCABULARY,
                                     settings=settings, config=QUICK, meteor=False, num_examples=2, progress=False)
    assert len(benchmark.records) == 2 * 2 * 3
    table = benchmark.table()
    assert list(table.index) == [(model, setting.name) for model in ("CLIP", "CLIP + ATP + CU") for setting in settings]
    assert list(table.columns) == ["BLEU-4", "ROUGE-L", "CIDEr", "clinical accuracy", "clinical F1"]
    assert all(" ± " in cell for cell in table["CIDEr"])
    summary = benchmark.summary(["CIDEr"])
    expected = benchmark.records.query("model == 'CLIP' and setting == 'supervised'")["CIDEr"]
    assert summary.loc[("CLIP", "supervised"), ("CIDEr", "mean")] == pytest.approx(expected.mean())
    assert summary.loc[("CLIP", "supervised"), ("CIDEr", "std")] == pytest.approx(expected.std(ddof=1))
    assert list(benchmark.examples["index"]) == [0, 5]
    assert "CLIP + ATP + CU | text-only" in benchmark.examples.columns


def test_benchmark_accepts_run_dicts():
    runs = {model: [dataclasses.asdict(model_runs[0])] for model, model_runs in small_runs().items()}
    benchmark = benchmark_captioning(runs, CAPTIONS, CAPTIONS, settings=(SUPERVISED,), config=QUICK, meteor=False,
                                     progress=False)
    assert benchmark.table(["CIDEr"])["CIDEr"].str.contains("±").sum() == 0


def test_benchmark_rejects_text_setting_without_text_embeddings():
    run = EmbeddingRun(unit_rows(6), unit_rows(6), unit_rows(6))
    with pytest.raises(ValueError, match="has none"):
        benchmark_captioning({"CLIP": [run]}, CAPTIONS, CAPTIONS, settings=(TEXT_ONLY_CEILING,), config=QUICK)


def test_benchmark_rejects_unknown_run_keys():
    with pytest.raises(TypeError, match="expected the EmbeddingRun fields"):
        benchmark_captioning({"CLIP": [{"images": unit_rows(6)}]}, CAPTIONS, CAPTIONS, config=QUICK)


def test_setting_rejects_unknown_regime():
    with pytest.raises(ValueError, match="regime must be"):
        CaptioningSetting("x", "zero_shot")


def test_captioning_row_columns():
    run = small_runs()["CLIP"][0]
    row = captioning_row(run, CAPTIONS, CAPTIONS, test_labels=LABELS, settings=(SUPERVISED, TEXT_ONLY),
                         config=QUICK, meteor=False, vocabulary=VOCABULARY, progress=False)
    assert set(row) == {f"{setting}: {metric}" for setting in ("supervised", "text-only")
                        for metric in ("BLEU-4", "ROUGE-L", "CIDEr", "clinical accuracy", "clinical F1")}


def test_small_corpus_trains_min_steps():
    config = DecoderConfig(width=16, layers=1, heads=2, epochs=1, min_steps=6, batch_size=4, max_length=16)
    captioner = train_captioner(unit_rows(6), CAPTIONS, config=config, cache=False, progress=False)
    # Two steps per epoch, so three epochs reach six steps.
    assert len(captioner.losses) == 3
