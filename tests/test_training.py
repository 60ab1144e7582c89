"""Specifications of the fit loop, checkpoints and the run cache (heads-only, on given features)."""

import json

import numpy as np
import pytest
import torch

from medgap_utils.config import ExperimentConfig, experiment_config
from medgap_utils.training import CheckpointError, fit, load_checkpoint, load_or_fit, load_result, save_checkpoint


def heads_config(**overrides) -> ExperimentConfig:
    config = experiment_config("clip_atp_cu", profile="ci", mode="heads_only",
                               **{"train.epochs": 3, "train.batch_size": 32, "train.snapshot_size": 8, **overrides})
    return ExperimentConfig(data=config.data, model=config.model, loss=config.loss, train=config.train)


def features(seed=0, offset=1.5):
    """Tower features with a shared signal per pair plus a modality offset (a gap to close)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for split, n in (("train", 128), ("validation", 32)):
        signal = torch.randn(n, 128, generator=generator)
        out[split] = (signal + offset + 0.3 * torch.randn(n, 128, generator=generator),
                      signal - offset + 0.3 * torch.randn(n, 128, generator=generator))
    return out


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))


def test_history_has_documented_keys(tmp_path):
    result = fit(heads_config(), features=features(), run_dir=tmp_path, progress=False)
    assert [record["epoch"] for record in result.history] == [0, 1, 2, 3]
    for key in ("train_loss", "train_loss_clip", "train_loss_atp", "train_loss_cu", "temperature", "lr",
                "val_modality_gap", "val_true_pair_cosine", "val_true_pair_angle"):
        assert key in result.history[1], key
    assert result.history[0]["train_loss"] is None


def test_snapshots_every_epoch(tmp_path):
    result = fit(heads_config(), features=features(), run_dir=tmp_path, progress=False)
    assert [snapshot["epoch"] for snapshot in result.snapshots] == [0, 1, 2, 3]
    assert result.snapshots[2]["image_embeddings"].shape == (8, 64)
    assert result.snapshots[2]["text_embeddings"].dtype == np.float32


def test_same_seed_same_numbers(tmp_path):
    first = fit(heads_config(), features=features(), run_dir=tmp_path / "a", progress=False)
    second = fit(heads_config(), features=features(), run_dir=tmp_path / "b", progress=False)
    assert first.history[-1]["train_loss"] == second.history[-1]["train_loss"]
    assert torch.equal(first.model.image_head.weight, second.model.image_head.weight)


def test_other_seed_other_weights(tmp_path):
    first = fit(heads_config(), features=features(), run_dir=tmp_path / "a", progress=False)
    second = fit(heads_config(**{"train.seed": 1}), features=features(), run_dir=tmp_path / "b", progress=False)
    assert not torch.equal(first.model.image_head.weight, second.model.image_head.weight)


def test_atp_cu_closes_gap_more_than_clip(tmp_path):
    closing = fit(heads_config(**{"train.epochs": 10}), features=features(), run_dir=tmp_path / "a", progress=False)
    clip = fit(heads_config(**{"train.epochs": 10, "loss.lambda_atp": 0.0, "loss.lambda_cu": 0.0}),
               features=features(), run_dir=tmp_path / "b", progress=False)
    assert closing.final("val_modality_gap") < clip.final("val_modality_gap")
    assert closing.final("val_true_pair_cosine") > clip.final("val_true_pair_cosine")


def test_fixed_temperature_stays_fixed(tmp_path):
    result = fit(heads_config(), features=features(), run_dir=tmp_path, progress=False)
    assert [record["temperature"] for record in result.history] == pytest.approx([0.1] * 4)


def test_learned_temperature_moves(tmp_path):
    config = heads_config(**{"loss.learn_temperature": True, "loss.temperature": 0.07})
    result = fit(config, features=features(), run_dir=tmp_path, progress=False)
    assert result.final("temperature") != pytest.approx(0.07)


def test_resumed_run_equals_uninterrupted(tmp_path):
    config = heads_config()
    uninterrupted = fit(config, features=features(), run_dir=tmp_path / "full", progress=False)

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, features=features(), run_dir=tmp_path / "split", progress=False, callbacks=[interrupt])
    resumed = fit(config, features=features(), run_dir=tmp_path / "split", resume=True, progress=False)

    for name, value in uninterrupted.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in uninterrupted.history]


def test_load_result_returns_finished_run(tmp_path):
    config = heads_config()
    trained = fit(config, features=features(), run_dir=tmp_path, progress=False)
    loaded = load_result(config, run_dir=tmp_path)
    assert loaded.history == trained.history
    assert torch.equal(loaded.model.text_head.weight, trained.model.text_head.weight)
    assert len(loaded.snapshots) == len(trained.snapshots)


def test_load_or_fit_trains_once(tmp_path):
    config = heads_config()
    epochs_seen = []
    load_or_fit(config, features=features(), run_dir=tmp_path, progress=False,
                callbacks=[lambda record: epochs_seen.append(record["epoch"])])
    load_or_fit(config, features=features(), run_dir=tmp_path, progress=False,
                callbacks=[lambda record: epochs_seen.append(record["epoch"])])
    assert epochs_seen == [1, 2, 3]


def test_non_finite_loss_names_step(tmp_path):
    broken = features()
    broken["train"][0][:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"at step 1 .*Likely causes"):
        fit(heads_config(), features=broken, run_dir=tmp_path, progress=False)


def test_checkpoint_meta_records_checksum(tmp_path):
    result = fit(heads_config(), features=features(), run_dir=tmp_path, progress=False)
    meta = json.loads((result.checkpoint_path / "meta.json").read_text())
    assert meta["complete"] is True
    assert len(meta["sha256"]) == 64


def test_corrupted_checkpoint_detected(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint", {"weight": torch.ones(3)}, {"epoch": 1})
    data = bytearray((path / "state.pt").read_bytes())
    data[-20] ^= 0xFF
    (path / "state.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


def test_checkpoint_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint", {"weight": torch.arange(4.0), "epoch": 2}, {"note": "x"})
    state, meta = load_checkpoint(path)
    assert torch.equal(state["weight"], torch.arange(4.0))
    assert meta["note"] == "x"


def test_checkpoint_rejects_pickled_code(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint", {"weight": torch.ones(1)}, {})
    torch.save({"object": ExperimentConfig()}, path / "state.pt")
    meta = json.loads((path / "meta.json").read_text())
    import hashlib
    meta["sha256"] = hashlib.sha256((path / "state.pt").read_bytes()).hexdigest()
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="could not be loaded"):
        load_checkpoint(path)


def test_missing_checkpoint_rejected(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def test_batch_larger_than_split_rejected(tmp_path):
    with pytest.raises(ValueError, match="train.batch_size=256"):
        fit(heads_config(**{"train.batch_size": 256}), features=features(), run_dir=tmp_path, progress=False)
