"""Captioning benchmark with captioners trained in worker processes."""

from __future__ import annotations

import pytest

from medgap_utils.captioning import (
    SUPERVISED,
    TEXT_ONLY,
    TEXT_ONLY_CEILING,
    DecoderConfig,
    EmbeddingRun,
    benchmark_captioning,
    captioning_row,
)
from test_captioning import CAPTIONS, unit_rows

QUICK = DecoderConfig(min_steps=1, width=16, layers=1, heads=2, epochs=2, batch_size=4, max_length=12)
SETTINGS = (SUPERVISED, TEXT_ONLY, TEXT_ONLY_CEILING)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))


def two_model_runs() -> dict[str, list[EmbeddingRun]]:
    return {
        model: [EmbeddingRun(*(unit_rows(6, seed=10 * offset + part) for part in range(4)), seed=offset)]
        for offset, model in enumerate(("CLIP", "CLIP + ATP + CU"))
    }


def run_benchmark(workers: int):
    return benchmark_captioning(two_model_runs(), CAPTIONS, CAPTIONS, settings=SETTINGS, config=QUICK,
                                meteor=False, progress=False, workers=workers)


def test_workers_match_serial_scores(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "serial"))
    serial = run_benchmark(workers=1)
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "parallel"))
    parallel = run_benchmark(workers=2)

    columns = [column for column in serial.records.columns if column != "train_seconds"]
    assert parallel.records[columns].equals(serial.records[columns])
    assert parallel.examples.equals(serial.examples)
    # Two models x (supervised, text-only); the ceiling reuses the text-only captioner.
    assert len(list((tmp_path / "parallel" / "captioning" / "captioners").glob("*.pt"))) == 4
    assert (parallel.records["train_seconds"] > 0).all()


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_workers_rejects_invalid_count(workers):
    with pytest.raises(ValueError, match="workers"):
        benchmark_captioning(two_model_runs(), CAPTIONS, CAPTIONS, settings=SETTINGS, config=QUICK,
                             meteor=False, progress=False, workers=workers)


def test_workers_require_cache():
    with pytest.raises(ValueError, match="cache=True"):
        benchmark_captioning(two_model_runs(), CAPTIONS, CAPTIONS, settings=SETTINGS, config=QUICK,
                             meteor=False, progress=False, workers=2, cache=False)


def test_row_workers_match_serial_row(tmp_path, monkeypatch):
    run = two_model_runs()["CLIP"][0]
    rows = {}
    for workers in (1, 2):
        monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / f"workers-{workers}"))
        rows[workers] = captioning_row(run, CAPTIONS, CAPTIONS, settings=SETTINGS, config=QUICK, meteor=False,
                                       progress=False, workers=workers)
    assert rows[2] == rows[1]
    assert len(list((tmp_path / "workers-2" / "captioning" / "captioners").glob("*.pt"))) == 2


def test_row_workers_require_cache():
    with pytest.raises(ValueError, match="cache=True"):
        captioning_row(two_model_runs()["CLIP"][0], CAPTIONS, CAPTIONS, settings=SETTINGS, config=QUICK,
                       meteor=False, progress=False, workers=2, cache=False)
