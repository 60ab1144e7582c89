"""End-to-end training and embedding on a small real datasets.Dataset."""

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from medgap_utils.config import experiment_config
from medgap_utils.models import build_model, embed
from medgap_utils.training import fit

FINDINGS = ["nodule", "effusion", "fracture", "normal"]


def tiny_split(n: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(FINDINGS), size=n)
    images = []
    for label in labels:
        pixels = rng.integers(0, 40, size=(64, 64), dtype=np.uint8)
        pixels[label * 16:(label + 1) * 16, :] += 200  # the finding is a bright band at its own height
        images.append(Image.fromarray(pixels, mode="L"))
    return datasets.Dataset.from_dict(
        {"image": images, "caption": [f"chest radiograph with a {FINDINGS[k]}" for k in labels],
         "image_id": [f"{seed}-{i}" for i in range(n)], "finding": [FINDINGS[k] for k in labels]},
        features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string"),
                                    "image_id": datasets.Value("string"), "finding": datasets.Value("string")}),
    )


@pytest.fixture(scope="module")
def corpus():
    return datasets.DatasetDict({"train": tiny_split(64, 0), "validation": tiny_split(32, 1),
                                 "test": tiny_split(32, 2)})


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAP_CACHE", str(tmp_path / "cache"))


def config(**overrides):
    return experiment_config("clip_atp_cu", profile="ci", **{"train.epochs": 2, "train.batch_size": 32,
                                                             "train.snapshot_size": 16, **overrides})


def test_embed_rows_unit_and_aligned(corpus):
    torch.manual_seed(0)
    model = build_model(config())
    image_embeddings, text_embeddings = embed(model, corpus["validation"], batch_size=10, progress=False)
    assert image_embeddings.shape == text_embeddings.shape == (32, 64)
    assert image_embeddings.dtype == torch.float32
    assert torch.allclose(image_embeddings.norm(dim=1), torch.ones(32), atol=1e-5)
    single_image, single_text = embed(model, corpus["validation"].select([5]), progress=False)
    assert torch.allclose(single_image[0], image_embeddings[5], atol=1e-5)
    assert torch.allclose(single_text[0], text_embeddings[5], atol=1e-5)


def test_embed_rejects_dataset_dict(corpus):
    model = build_model(config())
    with pytest.raises(TypeError, match="one split"):
        embed(model, corpus, progress=False)


def test_end_to_end_fit_updates_towers(corpus, tmp_path):
    torch.manual_seed(0)
    initial = build_model(config()).image_tower.state_dict()
    result = fit(config(), corpus=corpus, run_dir=tmp_path, progress=False)
    changed = [not torch.equal(initial[k], v) for k, v in result.model.image_tower.state_dict().items()]
    assert any(changed)
    assert [record["epoch"] for record in result.history] == [0, 1, 2]
    assert result.snapshots[0]["image_embeddings"].shape == (16, 64)


def test_end_to_end_same_seed_same_loss(corpus, tmp_path):
    first = fit(config(), corpus=corpus, run_dir=tmp_path / "a", progress=False)
    second = fit(config(), corpus=corpus, run_dir=tmp_path / "b", progress=False)
    assert first.history[-1]["train_loss"] == second.history[-1]["train_loss"]


def test_heads_only_caches_features(corpus, tmp_path):
    from medgap_utils.config import ExperimentConfig
    from medgap_utils.training import features_path

    base = config(**{"train.mode": "heads_only"})
    heads = ExperimentConfig(data=base.data, model=base.model, loss=base.loss, train=base.train)
    fit(heads, corpus=corpus, run_dir=tmp_path / "a", progress=False)
    assert features_path(heads).is_file()
    stored = torch.load(features_path(heads), weights_only=True)
    assert stored["train"]["image"].shape == (64, 128)
