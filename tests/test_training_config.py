"""Typed experiment configs: presets, validation messages and cache keys."""

import pytest

from medgap_utils.config import (
    LOSS_PRESETS,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    config_key,
    experiment_config,
)


def test_profile_sets_sizes():
    config = experiment_config("clip", profile="cpu")
    assert config.data.sizes == (4096, 512, 512)
    assert config.model.preset == "tiny"


def test_heads_only_gets_clip_backbone():
    config = experiment_config("clip_atp_cu", profile="ci", mode="heads_only")
    assert config.backbone.train.mode == "end_to_end"
    assert config.backbone.loss == LOSS_PRESETS["clip"]


def test_round_trip_through_dict():
    config = experiment_config("clip_atp_cu", profile="ci", mode="heads_only", seed=2)
    assert ExperimentConfig.from_dict(config.to_dict()) == config


def test_key_changes_with_any_field():
    config = experiment_config("clip", profile="ci")
    assert config_key(config) != config_key(config.replace(**{"train.seed": 1}))
    assert config_key(config) == config_key(experiment_config("clip", profile="ci"))


def test_unknown_model_preset_lists_allowed():
    with pytest.raises(ValueError, match=r"model.preset='resnet'.*'tiny', 'small', 'biomedclip', 'paper'"):
        ModelConfig(preset="resnet")


def test_unknown_loss_preset_lists_allowed():
    with pytest.raises(ValueError, match=r"loss='triplet'.*'clip'"):
        experiment_config("triplet", profile="ci")


def test_negative_weight_rejected():
    with pytest.raises(ValueError, match=r"loss.lambda_atp=-1.0.*>= 0"):
        LossConfig(lambda_atp=-1.0)


def test_non_finite_weight_rejected():
    with pytest.raises(ValueError, match="loss.lambda_cu=nan"):
        LossConfig(lambda_cu=float("nan"))


def test_unknown_schedule_rejected():
    with pytest.raises(ValueError, match=r"loss.schedule='cosine'.*'constant', 'ramp'"):
        LossConfig(schedule="cosine")


def test_tiny_temperature_rejected():
    with pytest.raises(ValueError, match="loss.temperature=0.001"):
        LossConfig(temperature=0.001)


def test_batch_of_one_rejected():
    with pytest.raises(ValueError, match="train.batch_size=1"):
        TrainConfig(batch_size=1)


def test_unknown_override_field_rejected():
    with pytest.raises(ValueError, match=r"train field='epoch'.*epochs"):
        experiment_config("clip", profile="ci", **{"train.epoch": 3})


def test_backbone_needs_heads_only_mode():
    backbone = experiment_config("clip", profile="ci")
    with pytest.raises(ValueError, match="backbone"):
        ExperimentConfig(backbone=backbone)


def test_backbone_preset_must_match():
    config = experiment_config("clip", profile="ci", mode="heads_only")
    with pytest.raises(ValueError, match=r"model.preset='small'.*'tiny'"):
        config.replace(**{"model.preset": "small"})
