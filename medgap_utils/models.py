"""Dual encoders: open_clip towers, projection heads and embedding extraction.

A :class:`DualEncoder` is an image tower and a text tower (open_clip modules)
followed by one projection head per modality into a shared space of
``embed_dim`` dimensions, plus the learnable or fixed ``logit_scale``
(``log(1 / temperature)``) of the contrastive loss.

Tower presets (``medgap_utils.config.MODEL_PRESET_NAMES``):

- ``tiny``, ``small``: small ViT and text transformers trained from scratch,
  built from the model configs in ``model_configs/`` registered with
  open_clip; the text tower uses open_clip's bundled BPE tokenizer.
- ``biomedclip``: BiomedCLIP (ViT-B/16 + PubMedBERT) through open_clip's hub id.
- ``paper``: an EVA-CLIP ViT-g/14 image tower and a BERT-base text tower, as
  in the medical gap-closing paper's description (512-d shared space).

The pretrained presets download weights from the Hugging Face Hub on first
use; offline they fail at once with a message saying how to get the weights.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from medgap_utils.config import ExperimentConfig, LossConfig, ModelConfig

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).with_name("model_configs")
OPEN_CLIP_NAMES = {"tiny": "medgap-tiny", "small": "medgap-small"}
BIOMEDCLIP_ID = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
PAPER_IMAGE_TOWER = ("EVA01-g-14", "laion400m_s11b_b41k")
PAPER_TEXT_TOWER = "google-bert/bert-base-uncased"
PAPER_CONTEXT_LENGTH = 128
# Channel statistics for the from-scratch towers: the phantom images are
# grey-scale in [0, 1], so 0.5 / 0.5 maps them to [-1, 1].
SCRATCH_MEAN = (0.5, 0.5, 0.5)
SCRATCH_STD = (0.5, 0.5, 0.5)
MAX_LOGIT_SCALE = math.log(100.0)

_registered = False


def register_model_configs() -> None:
    """Register the package's open_clip model configs (``medgap-tiny``, ``medgap-small``) once."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


def _make_head(kind: str, in_dim: int, embed_dim: int, hidden_dim: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_dim, embed_dim, bias=False)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, embed_dim))
    return nn.Identity()


class DualEncoder(nn.Module):
    """Image and text towers with projection heads into one shared space.

    Attributes:
        image_tower: maps images (B, 3, H, W) to features (B, image_feature_dim).
        text_tower: maps token ids (B, L) to features (B, text_feature_dim).
        image_head, text_head: map tower features to the shared space (B, embed_dim).
        logit_scale: scalar parameter ``log(1 / temperature)``; it has no
            gradient when the temperature is fixed.
        tokenizer: callable from a list of captions to token ids (B, L).
        image_size, image_mean, image_std: the input format the image tower expects.
    """

    def __init__(
        self,
        image_tower: nn.Module,
        text_tower: nn.Module,
        *,
        image_feature_dim: int,
        text_feature_dim: int,
        config: ModelConfig,
        temperature: float,
        learn_temperature: bool,
        tokenizer: Any,
        image_size: int,
        image_mean: tuple[float, ...],
        image_std: tuple[float, ...],
    ) -> None:
        super().__init__()
        if config.head == "none" and not image_feature_dim == text_feature_dim == config.embed_dim:
            raise ValueError(
                f"Invalid model.embed_dim={config.embed_dim} with model.head='none': the towers output "
                f"{image_feature_dim} (image) and {text_feature_dim} (text) dimensions, and without a "
                "head both must equal embed_dim. Use head='linear' or set embed_dim to the tower size."
            )
        self.config = config
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.image_feature_dim = image_feature_dim
        self.text_feature_dim = text_feature_dim
        self.image_head = _make_head(config.head, image_feature_dim, config.embed_dim, config.head_hidden_dim)
        self.text_head = _make_head(config.head, text_feature_dim, config.embed_dim, config.head_hidden_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)),
                                        requires_grad=learn_temperature)
        self.tokenizer = tokenizer
        self.image_size = image_size
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)

    @property
    def embed_dim(self) -> int:
        """Dimension of the shared embedding space."""
        return self.config.embed_dim

    @property
    def temperature(self) -> float:
        """Current softmax temperature ``1 / exp(logit_scale)``."""
        return float(torch.exp(-self.logit_scale.detach()))

    def towers(self) -> list[nn.Module]:
        """Return the two towers (the modules that heads-only training freezes)."""
        return [self.image_tower, self.text_tower]

    def heads(self) -> list[nn.Module]:
        """Return the two projection heads."""
        return [self.image_head, self.text_head]

    def freeze_towers(self) -> None:
        """Stop gradients through both towers and put them in eval mode."""
        for tower in self.towers():
            tower.requires_grad_(False)
            tower.eval()

    def encode_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Return image tower features (B, image_feature_dim) for images (B, 3, H, W)."""
        return self.image_tower(images)

    def encode_text_features(self, texts: torch.Tensor) -> torch.Tensor:
        """Return text tower features (B, text_feature_dim) for token ids (B, L)."""
        return self.text_tower(texts)

    def project(self, image_features: torch.Tensor, text_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map tower features through the heads and L2-normalize: two (B, embed_dim) tensors."""
        image_embeddings = F.normalize(self.image_head(image_features), dim=-1)
        text_embeddings = F.normalize(self.text_head(text_features), dim=-1)
        return image_embeddings, text_embeddings

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return L2-normalized image and text embeddings, each (B, embed_dim)."""
        return self.project(self.encode_image_features(images), self.encode_text_features(texts))

    def image_transform(self, train: bool = False):
        """Return the image transform (PIL image to normalized tensor) this model expects."""
        from medgap_utils.data import make_image_transform

        return make_image_transform(self.image_size, mean=self.image_mean, std=self.image_std, train=train)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _require_hub_file(repo_id: str, filename: str, what: str, cache_dir: str | os.PathLike | None) -> None:
    """Raise at once when the hub is offline and ``repo_id/filename`` is not in the local cache."""
    if not _hub_offline():
        return
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=True)
    except Exception as error:  # huggingface_hub raises several types for "not cached"
        raise RuntimeError(
            f"Cannot load {what}: HF_HUB_OFFLINE is set and {repo_id}/{filename} is not in the local "
            f"Hugging Face cache ({type(error).__name__}). Download it once with network access "
            "(unset HF_HUB_OFFLINE), or use the from-scratch presets 'tiny' or 'small'."
        ) from error


def _require_transformers(what: str) -> None:
    try:
        import transformers  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"Cannot load {what}: its text tower needs the 'transformers' package. "
            "Install it with: pip install 'medgap-utils[pretrained]' "
            "(in a checkout of the book: .venv/bin/pip install -e '.[pretrained]')"
        ) from error


def _build_scratch(config: ModelConfig, image_size: int, temperature: float, learn_temperature: bool) -> DualEncoder:
    import open_clip

    register_model_configs()
    name = OPEN_CLIP_NAMES[config.preset]
    patch_size = open_clip.get_model_config(name)["vision_cfg"]["patch_size"]
    if image_size % patch_size:
        raise ValueError(
            f"Invalid data.image_size={image_size} for model.preset={config.preset!r}: it must be a "
            f"multiple of the patch size {patch_size} (e.g. {patch_size * max(1, round(image_size / patch_size))})."
        )
    # Built from the registered config rather than through create_model, which
    # logs a warning about missing pretrained weights for every from-scratch model.
    model_config = open_clip.get_model_config(name)
    vision_cfg = {**model_config["vision_cfg"], "image_size": image_size}
    feature_dim = model_config["embed_dim"]
    clip = open_clip.CustomTextCLIP(feature_dim, vision_cfg=vision_cfg, text_cfg=model_config["text_cfg"])
    return DualEncoder(
        clip.visual, clip.text,
        image_feature_dim=feature_dim, text_feature_dim=feature_dim, config=config,
        temperature=temperature, learn_temperature=learn_temperature,
        tokenizer=open_clip.get_tokenizer(name), image_size=image_size,
        image_mean=SCRATCH_MEAN, image_std=SCRATCH_STD,
    )


def _build_biomedclip(config: ModelConfig, temperature: float, learn_temperature: bool,
                      hub_cache_dir: str | os.PathLike | None) -> DualEncoder:
    import open_clip

    repo_id = BIOMEDCLIP_ID.removeprefix("hf-hub:")
    _require_hub_file(repo_id, "open_clip_config.json", "BiomedCLIP", hub_cache_dir)
    _require_transformers("BiomedCLIP")
    clip = open_clip.create_model(BIOMEDCLIP_ID, cache_dir=hub_cache_dir)
    preprocess = open_clip.get_model_preprocess_cfg(clip)
    image_size = preprocess["size"] if isinstance(preprocess["size"], int) else preprocess["size"][0]
    feature_dim = clip.text.output_dim
    return DualEncoder(
        clip.visual, clip.text,
        image_feature_dim=feature_dim, text_feature_dim=feature_dim, config=config,
        temperature=temperature, learn_temperature=learn_temperature,
        tokenizer=open_clip.get_tokenizer(BIOMEDCLIP_ID, cache_dir=hub_cache_dir),
        image_size=image_size, image_mean=tuple(preprocess["mean"]), image_std=tuple(preprocess["std"]),
    )


def _build_paper(config: ModelConfig, temperature: float, learn_temperature: bool,
                 hub_cache_dir: str | os.PathLike | None) -> DualEncoder:
    # NOTE: this path needs several GB of weights from the Hugging Face Hub. It
    # was only run offline, where it raises, so the shapes below are untested.
    import open_clip
    from open_clip.hf_model import HFTextEncoder
    from open_clip.tokenizer import HFTokenizer

    image_name, image_tag = PAPER_IMAGE_TOWER
    image_cfg = open_clip.get_pretrained_cfg(image_name, image_tag)
    _require_hub_file(image_cfg["hf_hub"].rstrip("/"), "open_clip_pytorch_model.bin", "the EVA-CLIP image tower",
                      hub_cache_dir)
    _require_hub_file(PAPER_TEXT_TOWER, "config.json", "the BERT-base text tower", hub_cache_dir)
    _require_transformers("the paper preset")

    eva = open_clip.create_model(image_name, pretrained=image_tag, cache_dir=hub_cache_dir)
    image_feature_dim = open_clip.get_model_config(image_name)["embed_dim"]
    text_tower = HFTextEncoder(PAPER_TEXT_TOWER, output_dim=768, pooler_type="cls_pooler", proj_type=None,
                               pretrained=True)
    return DualEncoder(
        eva.visual, text_tower,
        image_feature_dim=image_feature_dim, text_feature_dim=768, config=config,
        temperature=temperature, learn_temperature=learn_temperature,
        tokenizer=HFTokenizer(PAPER_TEXT_TOWER, context_length=PAPER_CONTEXT_LENGTH),
        image_size=224, image_mean=tuple(image_cfg["mean"]), image_std=tuple(image_cfg["std"]),
    )


def build_model(
    config: ExperimentConfig | ModelConfig,
    *,
    image_size: int | None = None,
    loss: LossConfig | None = None,
    hub_cache_dir: str | os.PathLike | None = None,
) -> DualEncoder:
    """Build the dual encoder of a config (random heads; towers per preset).

    Args:
        config: an experiment config, or a model config with ``image_size``.
        image_size: image side in pixels for the from-scratch presets
            (default: ``config.data.image_size``; the pretrained presets use their own).
        loss: sets the initial temperature and whether it is learned (default:
            ``config.loss``, else CLIP's learned temperature starting at 0.07).
        hub_cache_dir: Hugging Face cache for the pretrained presets (default: the hub's).

    Raises:
        ValueError: image size not a multiple of the patch size, or ``head='none'``
            with an ``embed_dim`` different from the tower output.
        RuntimeError: a pretrained preset whose weights cannot be loaded
            (offline without a cached copy, or ``transformers`` missing).
    """
    if isinstance(config, ExperimentConfig):
        image_size = image_size or config.data.image_size
        loss = loss or config.loss
        model_config = config.model
    elif isinstance(config, ModelConfig):
        model_config = config
    else:
        raise TypeError(f"config must be an ExperimentConfig or ModelConfig, got {type(config).__name__}")
    loss = loss or LossConfig()
    temperature, learn = loss.temperature, loss.learn_temperature

    if model_config.preset in OPEN_CLIP_NAMES:
        if image_size is None:
            raise ValueError(f"image_size is required for model.preset={model_config.preset!r} with a ModelConfig")
        return _build_scratch(model_config, image_size, temperature, learn)
    if model_config.preset == "biomedclip":
        return _build_biomedclip(model_config, temperature, learn, hub_cache_dir)
    return _build_paper(model_config, temperature, learn, hub_cache_dir)


def count_parameters(model: DualEncoder) -> dict[str, int]:
    """Return parameter counts per part: towers, heads, ``logit_scale``, total and trainable."""
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "image_tower": count(model.image_tower),
        "text_tower": count(model.text_tower),
        "image_head": count(model.image_head),
        "text_head": count(model.text_head),
        "logit_scale": 1,
        "total": count(model),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def _batches(model: DualEncoder, data: Any, batch_size: int, num_workers: int | None) -> Iterable[dict]:
    """Turn a ``datasets.Dataset`` into a data loader; pass loaders and batch lists through."""
    import datasets

    if isinstance(data, datasets.DatasetDict):
        raise TypeError("data must be one split (e.g. corpus['validation']), got a DatasetDict")
    if isinstance(data, datasets.Dataset):
        from medgap_utils.data import make_dataloader

        return make_dataloader(data, batch_size, transform=model.image_transform(train=False),
                               tokenizer=model.tokenizer, shuffle=False, seed=0, num_workers=num_workers)
    if isinstance(data, Iterable):
        return data
    raise TypeError(f"data must be a datasets.Dataset or an iterable of batches, got {type(data).__name__}")


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_features(
    model: DualEncoder,
    data: Any,
    *,
    batch_size: int = 256,
    num_workers: int | None = 0,
    progress: bool = True,
    description: str = "tower features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return tower features (before the heads) for every pair of ``data``.

    Args:
        data: a ``datasets.Dataset`` with ``image`` and ``caption`` columns, or
            an iterable of batches ``dict(images=(B, 3, H, W), texts=(B, L))``.

    Returns:
        ``(image_features, text_features)``: float32 CPU tensors of shapes
        (N, image_feature_dim) and (N, text_feature_dim), not normalized, in data order.
    """
    device = _model_device(model)
    was_training = model.training
    model.eval()
    image_parts, text_parts = [], []
    for batch in tqdm(_batches(model, data, batch_size, num_workers), desc=description, disable=not progress,
                      leave=False):
        images = batch["images"].to(device, non_blocking=True)
        texts = batch["texts"].to(device, non_blocking=True)
        image_parts.append(model.encode_image_features(images).float().cpu())
        text_parts.append(model.encode_text_features(texts).float().cpu())
    model.train(was_training)
    if not image_parts:
        raise ValueError("data is empty: no batches to embed")
    return torch.cat(image_parts), torch.cat(text_parts)


@torch.no_grad()
def project_features(
    model: DualEncoder, image_features: torch.Tensor, text_features: torch.Tensor, *, batch_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map cached tower features (N, F) through the heads: two L2-normalized (N, embed_dim) float32 tensors."""
    if image_features.shape[0] != text_features.shape[0]:
        raise ValueError(f"image_features and text_features must have the same number of rows, got "
                         f"{image_features.shape[0]} and {text_features.shape[0]}")
    device = _model_device(model)
    was_training = model.training
    model.eval()
    image_parts, text_parts = [], []
    for start in range(0, image_features.shape[0], batch_size):
        image_batch = image_features[start:start + batch_size].to(device)
        text_batch = text_features[start:start + batch_size].to(device)
        image_embeddings, text_embeddings = model.project(image_batch, text_batch)
        image_parts.append(image_embeddings.float().cpu())
        text_parts.append(text_embeddings.float().cpu())
    model.train(was_training)
    return torch.cat(image_parts), torch.cat(text_parts)


def embed(
    model: DualEncoder,
    data: Any,
    *,
    batch_size: int = 256,
    num_workers: int | None = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the L2-normalized image and text embeddings of every pair of ``data``.

    Args:
        model: a :class:`DualEncoder` (its device is used).
        data: a ``datasets.Dataset`` split with ``image`` and ``caption``
            columns, or an iterable of batches ``dict(images=(B, 3, H, W), texts=(B, L))``.
        batch_size: pairs per forward pass when ``data`` is a dataset.
        progress: show a progress bar.

    Returns:
        ``(image_embeddings, text_embeddings)``: float32 CPU tensors (N, embed_dim),
        unit L2 norm per row, row i of both from pair i.

    Raises:
        TypeError: ``data`` is a DatasetDict or not iterable.
        ValueError: ``data`` is empty.
    """
    if not isinstance(model, DualEncoder):
        raise TypeError(f"model must be a DualEncoder (medgap_utils.models.build_model), got {type(model).__name__}")
    image_features, text_features = encode_features(model, data, batch_size=batch_size, num_workers=num_workers,
                                                    progress=progress, description="embedding")
    return project_features(model, image_features, text_features)


@torch.no_grad()
def embed_texts(model: DualEncoder, texts: list[str], *, batch_size: int = 256) -> torch.Tensor:
    """Return the L2-normalized text embeddings of free-standing texts, such as zero-shot prompts.

    The texts go through the model's tokenizer, text tower and text head,
    as the captions of :func:`embed` do.

    Args:
        model: a :class:`DualEncoder` (its device is used).
        texts: one or more strings.
        batch_size: texts per forward pass.

    Returns:
        A float32 CPU tensor (len(texts), embed_dim) with unit L2 norm per row.

    Raises:
        TypeError: ``model`` is not a DualEncoder or ``texts`` is not a list of strings.
        ValueError: ``texts`` is empty.
    """
    if not isinstance(model, DualEncoder):
        raise TypeError(f"model must be a DualEncoder (medgap_utils.models.build_model), got {type(model).__name__}")
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise TypeError(f"texts must be a list of strings, got {texts!r:.80}")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: pass at least one string to embed")

    device = _model_device(model)
    was_training = model.training
    model.eval()
    parts = []
    for start in range(0, len(texts), batch_size):
        tokens = model.tokenizer(texts[start:start + batch_size]).to(device)
        features = model.encode_text_features(tokens)
        parts.append(F.normalize(model.text_head(features), dim=-1).float().cpu())
    model.train(was_training)
    return torch.cat(parts)
