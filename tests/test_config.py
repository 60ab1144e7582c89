"""Run-time profiles, the cache directory and config keys."""

from __future__ import annotations

import dataclasses

import pytest

from medgap_utils import config


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "ci")
    assert config.get_profile().name == "ci"


def test_profile_follows_hardware(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    monkeypatch.setattr(config, "_cuda_available", lambda: False)
    assert config.get_profile().name == "cpu"
    monkeypatch.setattr(config, "_cuda_available", lambda: True)
    assert config.get_profile().name == "gpu"


def test_unknown_profile_names_choices():
    with pytest.raises(ValueError, match="ci, cpu, gpu, paper"):
        config.get_profile("laptop")


def test_ci_profile_is_smallest():
    ci, cpu = config.PROFILES["ci"], config.PROFILES["cpu"]
    assert sum(ci.corpus_sizes) < sum(cpu.corpus_sizes)
    assert ci.epochs <= cpu.epochs


def test_cache_dir_uses_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path / "cache"))
    path = config.cache_dir("corpora")
    assert path == tmp_path / "cache" / "corpora"
    assert path.is_dir()


def test_config_key_is_stable_and_order_free():
    assert config.config_key({"a": 1, "b": 2}) == config.config_key({"b": 2, "a": 1})
    assert config.config_key({"a": 1}) != config.config_key({"a": 2})


def test_config_key_accepts_dataclass():
    profile = config.PROFILES["ci"]
    assert config.config_key(profile) == config.config_key(dataclasses.asdict(profile))
