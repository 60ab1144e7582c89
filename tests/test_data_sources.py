"""load_corpus: one data config switch between the phantoms and ROCO, run offline on local parquet files."""

import io

import datasets
import numpy as np
import pytest
from PIL import Image

from medgap_utils.config import DataConfig, experiment_config
from medgap_utils.data import load_corpus, validate_corpus, write_roco_parquet
from medgap_utils.training.features import features_key


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _rows(split: str, count: int) -> dict:
    return {
        "image": [_png(10 * i) for i in range(count)],
        "image_id": [f"ROCOv2_2023_{split}_{i + 1:06d}" for i in range(count)],
        "caption": [f"CT of case {i} ({split})." for i in range(count)],
        "cui": [["C0040405"]] * count,
    }


@pytest.fixture
def mini_files(tmp_path):
    """The ROCOv2 sample's layout: train and test splits, no validation split."""
    return {split: str(write_roco_parquet(_rows(split, count), tmp_path / f"{split}.parquet"))
            for split, count in (("train", 7), ("test", 4))}


def test_phantom_config_loads_phantoms(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path))
    corpus = load_corpus(DataConfig(sizes=(6, 2, 2), image_size=32))
    assert [len(corpus[split]) for split in ("train", "validation", "test")] == [6, 2, 2]
    assert "group" in corpus["train"].column_names


def test_roco_mini_carves_validation_from_train(mini_files, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "medgap"))
    corpus = load_corpus(DataConfig(corpus="roco_mini", sizes=(4, 2, 3)), data_files=mini_files, progress=False)
    validate_corpus(corpus)
    assert corpus["train"]["image_id"] == [f"ROCOv2_2023_train_{i:06d}" for i in (1, 2, 3, 4)]
    assert corpus["validation"]["image_id"] == [f"ROCOv2_2023_train_{i:06d}" for i in (5, 6)]
    assert len(corpus["test"]) == 3
    assert isinstance(corpus["train"][0]["image"], Image.Image)
    assert corpus["train"].features["image"] == datasets.Image()


def test_roco_smaller_split_is_used_whole(mini_files, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "medgap"))
    corpus = load_corpus(DataConfig(corpus="roco_mini", sizes=(2, 1, 9)), data_files=mini_files, progress=False)
    assert len(corpus["test"]) == 4
    assert "fewer than the 9 requested" in caplog.text


def test_roco_small_train_split_is_shared_by_ratio(mini_files, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "medgap"))
    corpus = load_corpus(DataConfig(corpus="roco_mini", sizes=(6, 4, 4)), data_files=mini_files, progress=False)
    assert [len(corpus[split]) for split in ("train", "validation")] == [4, 3]


def test_local_files_are_not_cached(mini_files, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "medgap"))
    load_corpus(DataConfig(corpus="roco_mini", sizes=(4, 2, 3)), data_files=mini_files, progress=False)
    assert not (tmp_path / "medgap" / "corpora").exists()


def test_corpus_switch_changes_feature_cache_key():
    phantom = experiment_config("clip", "biomedclip", profile="ci", mode="heads_only")
    roco = experiment_config("clip", "biomedclip", profile="ci", mode="heads_only", **{"data.corpus": "roco_mini"})
    assert features_key(phantom) != features_key(roco)


def test_unknown_corpus_is_rejected():
    with pytest.raises(ValueError, match="data.corpus='mimic'"):
        DataConfig(corpus="mimic")


def test_non_config_is_rejected():
    with pytest.raises(TypeError, match="DataConfig"):
        load_corpus("roco_mini")
