"""Dual encoders built on open_clip towers, and the embeddings they produce."""

import pytest
import torch

from medgap_utils.config import ExperimentConfig, ModelConfig, experiment_config
from medgap_utils.models import build_model, count_parameters, embed, embed_texts, project_features


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(experiment_config("clip", profile="ci"))


def test_tiny_parameter_counts(tiny):
    counts = count_parameters(tiny)
    assert counts["image_head"] == 128 * 64
    assert counts["total"] == sum(counts[k] for k in ("image_tower", "text_tower", "image_head", "text_head",
                                                      "logit_scale"))


def test_forward_gives_unit_rows(tiny):
    images = torch.randn(3, 3, 64, 64)
    image_embeddings, text_embeddings = tiny(images, tiny.tokenizer(["a", "chest radiograph", "knee mri"]))
    assert image_embeddings.shape == text_embeddings.shape == (3, 64)
    assert torch.allclose(image_embeddings.norm(dim=1), torch.ones(3), atol=1e-5)


def test_tokenizer_is_open_clip_bpe(tiny):
    tokens = tiny.tokenizer(["a chest ct"])
    assert tokens.shape == (1, 48)
    assert tokens[0, 0] == 49406  # the start-of-text id of open_clip's SimpleTokenizer


def test_random_towers_sit_in_cones(tiny):
    images = torch.rand(32, 3, 64, 64)
    texts = tiny.tokenizer([f"finding number {i} in the left lung" for i in range(32)])
    with torch.no_grad():
        image_embeddings, text_embeddings = tiny(images, texts)
    image_cone = (image_embeddings @ image_embeddings.T)[~torch.eye(32, dtype=torch.bool)].mean()
    cross = (image_embeddings @ text_embeddings.T).mean()
    assert image_cone > 0.5
    assert cross < image_cone


def test_mlp_head_shapes():
    config = experiment_config("clip", profile="ci", **{"model.head": "mlp", "model.embed_dim": 32})
    model = build_model(config)
    image_embeddings, _ = project_features(model, torch.randn(5, 128), torch.randn(5, 128))
    assert image_embeddings.shape == (5, 32)


def test_freeze_towers_leaves_heads_trainable(tiny):
    model = build_model(experiment_config("clip", profile="ci"))
    model.freeze_towers()
    counts = count_parameters(model)
    assert counts["trainable"] == counts["image_head"] + counts["text_head"] + counts["logit_scale"]


def test_head_none_with_mismatched_dimension_rejected():
    config = experiment_config("clip", profile="ci", **{"model.head": "none", "model.embed_dim": 64})
    with pytest.raises(ValueError, match=r"model.embed_dim=64.*128"):
        build_model(config)


def test_image_size_not_multiple_of_patch_rejected():
    config = experiment_config("clip", profile="ci", **{"data.image_size": 60})
    with pytest.raises(ValueError, match=r"data.image_size=60.*patch size 8"):
        build_model(config)


@pytest.mark.parametrize("preset", ["biomedclip", "paper"])
def test_pretrained_offline_fails_fast(preset, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = ExperimentConfig(model=ModelConfig(preset=preset, embed_dim=512))
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        build_model(config, hub_cache_dir=tmp_path)


def test_embed_texts_matches_caption_embeddings(tiny):
    import datasets
    from PIL import Image

    captions = ["Chest radiograph with a right nodule.", "Normal knee MRI.", "Axial CT of the abdomen."]
    images = [Image.new("RGB", (64, 64), color) for color in ("black", "gray", "white")]
    split = datasets.Dataset.from_dict({"image": images, "caption": captions, "image_id": ["a", "b", "c"]})
    _, caption_embeddings = embed(tiny, split, progress=False)
    assert torch.allclose(embed_texts(tiny, captions), caption_embeddings, atol=1e-5)


def test_embed_texts_rejects_one_string(tiny):
    with pytest.raises(TypeError, match="list of strings"):
        embed_texts(tiny, "Normal knee MRI.")
