"""Run-time profiles and the artifact cache directory.

A profile chooses sizes (corpus, epochs, seeds) so that one code path serves a
2-core CI machine, a laptop, a GPU box and the paper-scale setting. It is
selected by the ``MEDGAP_PROFILE`` environment variable; without it, the
profile follows the hardware (``gpu`` when CUDA is available, else ``cpu``).

Artifacts (corpora, cached features, checkpoints, benchmark tables) live in
one cache directory, ``MEDGAP_CACHE`` or ``~/.cache/medgap``, under keys
derived from the config that produced them (see :func:`config_key`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import json
import os
from pathlib import Path
from typing import Any

PROFILE_ENV = "MEDGAP_PROFILE"
CACHE_ENV = "MEDGAP_CACHE"

PROFILE_NAMES = ("ci", "cpu", "gpu", "paper")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Sizes for one run-time profile.

    Attributes:
        name: one of ``PROFILE_NAMES``.
        device: ``"cpu"`` or ``"cuda"``.
        corpus_sizes: number of phantom pairs per split (train, validation, test).
        image_size: side of the square phantom images, in pixels.
        epochs: end-to-end training epochs for the chapters' main models.
        heads_epochs: epochs for heads-only training on cached features.
        batch_size: training batch size (pairs per step).
        seeds: seeds used where a result is reported as mean ± std.
    """

    name: str
    device: str
    corpus_sizes: tuple[int, int, int]
    image_size: int
    epochs: int
    heads_epochs: int
    batch_size: int
    seeds: tuple[int, ...]

    @property
    def splits(self) -> dict[str, int]:
        """Split sizes keyed by the split names of the corpus."""
        train, validation, test = self.corpus_sizes
        return {"train": train, "validation": validation, "test": test}


# The cpu sizes aim at about 20 minutes for the whole book on a 2-core x86_64
# machine and the ci sizes at 8. bench/book_execution.py measured 10.5 and 4.3.
PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        device="cpu",
        corpus_sizes=(1024, 256, 256),
        image_size=64,
        epochs=3,
        heads_epochs=20,
        batch_size=128,
        seeds=(0, 1, 2),
    ),
    "cpu": Profile(
        name="cpu",
        device="cpu",
        corpus_sizes=(4096, 512, 512),
        image_size=64,
        epochs=8,
        heads_epochs=40,
        batch_size=128,
        seeds=(0, 1, 2),
    ),
    "gpu": Profile(
        name="gpu",
        device="cuda",
        corpus_sizes=(20000, 2000, 2000),
        image_size=96,
        epochs=20,
        heads_epochs=60,
        batch_size=256,
        seeds=(0, 1, 2, 3, 4),
    ),
    "paper": Profile(
        name="paper",
        device="cuda",
        corpus_sizes=(20000, 2000, 2000),
        image_size=224,
        epochs=30,
        heads_epochs=100,
        batch_size=256,
        seeds=(0, 1, 2, 3, 4),
    ),
}


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def get_profile(name: str | None = None) -> Profile:
    """Return the profile named ``name``, ``$MEDGAP_PROFILE``, or the hardware's.

    Raises:
        ValueError: if the name is not one of ``PROFILE_NAMES``.
    """
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip().lower() or None
    if name is None:
        name = "gpu" if _cuda_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}; expected one of {', '.join(PROFILE_NAMES)}. "
            f"Set {PROFILE_ENV} to one of them or leave it unset to follow the hardware."
        )
    return PROFILES[name]


def cache_dir(*parts: str, create: bool = True) -> Path:
    """Return the artifact cache directory, or a subdirectory of it.

    The root is ``$MEDGAP_CACHE`` when set, else ``~/.cache/medgap``.
    """
    root = os.environ.get(CACHE_ENV)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "medgap"
    path = path.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def config_key(config: Any, length: int = 16) -> str:
    """Return a short stable hash of a config, for naming cached artifacts.

    ``config`` may be a dataclass, a mapping or any JSON-serializable value.
    Equal configs give equal keys across processes and machines.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


# ---------------------------------------------------------------------------
# Typed experiment configs
# ---------------------------------------------------------------------------
# An experiment is data + model + loss + training. Configs are frozen
# dataclasses, so equal configs hash to equal cache keys (config_key) and a
# cached run is reused exactly when everything that produced it is equal.

MODEL_PRESET_NAMES = ("tiny", "small", "biomedclip", "paper")
HEAD_TYPES = ("linear", "mlp", "none")
SCHEDULE_NAMES = ("constant", "ramp")
TRAINING_MODES = ("end_to_end", "heads_only")
# The hub corpora are loaded by medgap_utils.data.load_corpus (ROCOv2 sample, ROCOv2, ROCO v1).
CORPUS_NAMES = ("phantom", "roco_mini", "roco_v2", "roco_v1")

# Temperature of CLIP at initialization and the fixed temperature of the
# gap-closing objective's public code (Grassucci et al., ICLR 2026).
CLIP_INIT_TEMPERATURE = 0.07
FIXED_TEMPERATURE = 0.1


def _reject(field: str, value: Any, allowed: str) -> None:
    raise ValueError(f"Invalid {field}={value!r}: expected {allowed}.")


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _reject(field, value, f"one of {', '.join(map(repr, choices))}")


def _check_positive(field: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        _reject(field, value, "an integer" if integer else "a number")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        _reject(field, value, "a finite number >= 0" if allow_zero else "a finite number > 0")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The training corpus and its size.

    Attributes:
        corpus: one of ``CORPUS_NAMES``: the embedded phantoms, or a ROCO
            version from the Hugging Face hub (see ``medgap_utils.data.load_corpus``).
        sizes: pairs per split (train, validation, test); for a hub corpus, the
            first pairs of each split, or all of a smaller split.
        image_size: side of the square phantom images, in pixels (the
            pretrained towers resize any image to their own size).
        seed: seed of the phantom generator (not of training).
        augment: apply random training augmentation to images.
    """

    corpus: str = "phantom"
    sizes: tuple[int, int, int] = (4096, 512, 512)
    image_size: int = 64
    seed: int = 0
    augment: bool = False

    def __post_init__(self) -> None:
        _check_choice("data.corpus", self.corpus, CORPUS_NAMES)
        if len(self.sizes) != 3:
            _reject("data.sizes", self.sizes, "three split sizes (train, validation, test)")
        for name, size in zip(("train", "validation", "test"), self.sizes):
            _check_positive(f"data.sizes[{name}]", size, integer=True)
        _check_positive("data.image_size", self.image_size, integer=True)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The dual encoder: towers, projection heads and the shared space.

    Attributes:
        preset: tower preset, one of ``MODEL_PRESET_NAMES`` (see ``medgap_utils.models``).
        embed_dim: dimension of the shared embedding space.
        head: projection head on each tower, one of ``HEAD_TYPES``; ``"none"``
            uses the tower output directly and needs ``embed_dim`` equal to it.
        head_hidden_dim: hidden width of the ``"mlp"`` head.
    """

    preset: str = "tiny"
    embed_dim: int = 64
    head: str = "linear"
    head_hidden_dim: int = 256

    def __post_init__(self) -> None:
        _check_choice("model.preset", self.preset, MODEL_PRESET_NAMES)
        _check_choice("model.head", self.head, HEAD_TYPES)
        _check_positive("model.embed_dim", self.embed_dim, integer=True)
        _check_positive("model.head_hidden_dim", self.head_hidden_dim, integer=True)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The objective ``L_CLIP + w_ATP(t) L_ATP + w_CU(t) L_CU (+ Fahim-style terms)``.

    Attributes:
        lambda_atp: weight of Align True Pairs (mean squared true-pair distance).
        lambda_cu: weight of Centroid Uniformity (uniformity of pair centroids).
        schedule: ``"constant"`` keeps the weights; ``"ramp"`` multiplies the
            ATP weight by a ramp 1 -> 2 over the second half of training and
            the CU weight by a ramp 1 -> 0 between 20 % and 70 % of training.
        lambda_align: weight of the alignment term of Fahim et al. (mean
            squared true-pair distance, a second handle on the same quantity as ATP).
        lambda_uniform: weight of the per-modality uniformity terms of Fahim
            et al. (mean of the image and text uniformity).
        temperature: softmax temperature tau of InfoNCE at initialization (logits = cos / tau).
        learn_temperature: learn tau (as ``logit_scale = log(1/tau)``) or keep it fixed.
        uniformity_t: the ``t`` of the uniformity kernel ``exp(-t ||a - b||^2)``.
    """

    lambda_atp: float = 0.0
    lambda_cu: float = 0.0
    schedule: str = "constant"
    lambda_align: float = 0.0
    lambda_uniform: float = 0.0
    temperature: float = CLIP_INIT_TEMPERATURE
    learn_temperature: bool = True
    uniformity_t: float = 2.0

    def __post_init__(self) -> None:
        for name in ("lambda_atp", "lambda_cu", "lambda_align", "lambda_uniform"):
            _check_positive(f"loss.{name}", getattr(self, name), allow_zero=True)
        _check_choice("loss.schedule", self.schedule, SCHEDULE_NAMES)
        _check_positive("loss.temperature", self.temperature)
        if self.temperature < 0.01:
            _reject("loss.temperature", self.temperature, "a value >= 0.01 (logit_scale is clamped at ln 100)")
        _check_positive("loss.uniformity_t", self.uniformity_t)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimization settings.

    Attributes:
        mode: ``"end_to_end"`` trains towers and heads; ``"heads_only"`` trains
            the heads (and temperature) on frozen tower features cached on disk.
        epochs: passes over the training split.
        batch_size: pairs per optimizer step (the global batch under torchrun).
        lr: peak AdamW learning rate, reached after warmup, then cosine decay to 0.
        weight_decay: AdamW weight decay (not applied to biases, norms, logit_scale).
        warmup_fraction: fraction of all steps with linear warmup.
        grad_clip: max global gradient norm, or None for no clipping.
        seed: seed of initialization, data order and augmentation.
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        snapshot_size: validation pairs whose embeddings are stored every epoch.
        num_workers: data-loader worker processes (None: the data module's default).
    """

    mode: str = "end_to_end"
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_fraction: float = 0.1
    grad_clip: float | None = 1.0
    seed: int = 0
    amp: bool = True
    snapshot_size: int = 256
    num_workers: int | None = 0

    def __post_init__(self) -> None:
        _check_choice("train.mode", self.mode, TRAINING_MODES)
        _check_positive("train.epochs", self.epochs, integer=True)
        _check_positive("train.batch_size", self.batch_size, integer=True)
        # scikit-learn accepts seeds from 0 to 2**32 - 1 only, and numpy rejects negative ones.
        _check_positive("train.seed", self.seed, integer=True, allow_zero=True)
        if self.batch_size < 2:
            _reject("train.batch_size", self.batch_size, "at least 2 (InfoNCE needs negatives)")
        _check_positive("train.lr", self.lr)
        _check_positive("train.weight_decay", self.weight_decay, allow_zero=True)
        _check_positive("train.warmup_fraction", self.warmup_fraction, allow_zero=True)
        if self.warmup_fraction >= 1:
            _reject("train.warmup_fraction", self.warmup_fraction, "a fraction in [0, 1)")
        if self.grad_clip is not None:
            _check_positive("train.grad_clip", self.grad_clip)
        _check_positive("train.snapshot_size", self.snapshot_size, integer=True, allow_zero=True)
        if self.num_workers is not None:
            _check_positive("train.num_workers", self.num_workers, integer=True, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """One training run: data, model, loss and optimization.

    Attributes:
        data, model, loss, train: the parts (see their classes).
        backbone: for ``train.mode == "heads_only"``, the end-to-end run whose
            towers are frozen and whose features are cached; None uses the
            preset's own towers (pretrained weights, or random initialization
            for the from-scratch presets).
        name: a label for tables and figures; it is part of the cache key.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    backbone: ExperimentConfig | None = None
    name: str = ""

    def __post_init__(self) -> None:
        parts = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}
        for field, kind in parts.items():
            if not isinstance(getattr(self, field), kind):
                raise TypeError(f"ExperimentConfig.{field} must be a {kind.__name__}, "
                                f"got {type(getattr(self, field)).__name__}")
        if self.backbone is None:
            return
        if self.train.mode != "heads_only":
            _reject("backbone", "an ExperimentConfig", "None unless train.mode is 'heads_only'")
        if not isinstance(self.backbone, ExperimentConfig) or self.backbone.train.mode != "end_to_end":
            _reject("backbone.train.mode", getattr(getattr(self.backbone, "train", None), "mode", self.backbone),
                    "'end_to_end' (heads-only runs freeze the towers of an end-to-end run)")
        if self.backbone.model.preset != self.model.preset:
            _reject("model.preset", self.model.preset,
                    f"the backbone's preset {self.backbone.model.preset!r} (the towers come from it)")
        if self.backbone.data != self.data:
            _reject("data", self.data, f"the backbone's data config {self.backbone.data!r}")

    def replace(self, **changes: Any) -> ExperimentConfig:
        """Return a copy with dotted fields changed, e.g. ``replace(**{"train.seed": 1})``."""
        grouped: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for key, value in changes.items():
            part, _, field = key.partition(".")
            if field:
                grouped.setdefault(part, {})[field] = value
            else:
                top[key] = value
        for part, fields in grouped.items():
            if part not in ("data", "model", "loss", "train"):
                _reject("field", f"{part}.{next(iter(fields))}", "a field of data, model, loss or train")
            current = getattr(self, part)
            unknown = set(fields) - {f.name for f in dataclasses.fields(current)}
            if unknown:
                allowed = ", ".join(f.name for f in dataclasses.fields(current))
                _reject(f"{part} field", sorted(unknown)[0], f"one of {allowed}")
            top[part] = dataclasses.replace(current, **fields)
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain JSON-serializable values."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        """Rebuild a config from :meth:`to_dict` output (validating every field)."""
        data = dict(data)
        backbone = data.pop("backbone", None)
        parts = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}
        kwargs: dict[str, Any] = {}
        for field, kind in parts.items():
            values = dict(data.pop(field, {}))
            if field == "data" and "sizes" in values:
                values["sizes"] = tuple(values["sizes"])
            kwargs[field] = kind(**values)
        return cls(**kwargs, backbone=cls.from_dict(backbone) if backbone else None, **data)


# Named objectives compared by the book and the benchmark.
LOSS_PRESETS: dict[str, LossConfig] = {
    # CLIP as usually trained: tau starts at 0.07 and is learned.
    "clip": LossConfig(),
    # CLIP starting at tau = 0.01, the value CLIP's learned temperature reaches in
    # large-scale training; at tau = 1/100 an existing gap is a minimum of the
    # contrastive loss (Liang et al., 2022), so short runs keep the gap.
    "clip_low_tau": LossConfig(temperature=0.01),
    # CLIP with tau fixed at the gap-closing code's value, the fair baseline for it.
    "clip_fixed_tau": LossConfig(temperature=FIXED_TEMPERATURE, learn_temperature=False),
    # The gap-closing objective with the public code's schedules and fixed tau.
    "clip_atp_cu": LossConfig(lambda_atp=1.0, lambda_cu=1.0, schedule="ramp",
                              temperature=FIXED_TEMPERATURE, learn_temperature=False),
    "atp_only": LossConfig(lambda_atp=1.0, schedule="ramp",
                           temperature=FIXED_TEMPERATURE, learn_temperature=False),
    "cu_only": LossConfig(lambda_cu=1.0, schedule="ramp",
                          temperature=FIXED_TEMPERATURE, learn_temperature=False),
    # Per-modality uniformity and alignment added to CLIP (Fahim et al., 2024).
    "fahim": LossConfig(lambda_align=1.0, lambda_uniform=1.0,
                        temperature=FIXED_TEMPERATURE, learn_temperature=False),
}

MODEL_DEFAULTS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(preset="tiny", embed_dim=64),
    "small": ModelConfig(preset="small", embed_dim=128),
    "biomedclip": ModelConfig(preset="biomedclip", embed_dim=512),
    "paper": ModelConfig(preset="paper", embed_dim=512),
}


def experiment_config(
    loss: str = "clip",
    model: str | None = None,
    *,
    profile: str | Profile | None = None,
    mode: str = "end_to_end",
    seed: int = 0,
    backbone_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> ExperimentConfig:
    """Return the experiment preset for a loss preset, a tower preset and a profile.

    The profile sets corpus sizes, image size, epochs and batch size; the
    tower preset defaults to ``tiny`` on the CPU profiles and ``small`` on GPU.
    A heads-only config gets an end-to-end CLIP run of the same model as its
    backbone when the model trains from scratch.

    Args:
        loss: one of ``LOSS_PRESETS``.
        model: one of ``MODEL_PRESET_NAMES`` (default: by profile).
        profile: a profile or its name (default: :func:`get_profile`).
        mode: one of ``TRAINING_MODES``.
        seed: training seed.
        backbone_overrides: dotted field changes of the backbone run. The
            ``data.*`` and ``model.preset`` overrides reach it anyway, because
            a backbone must match the data and towers of the run it serves.
        overrides: dotted field changes, e.g. ``**{"train.epochs": 2}``.

    Raises:
        ValueError: for an unknown preset, mode or field.
    """
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    if loss not in LOSS_PRESETS:
        _reject("loss", loss, f"one of {', '.join(map(repr, LOSS_PRESETS))}")
    if model is None:
        model = "small" if profile.device == "cuda" and profile.name != "paper" else "tiny"
        if profile.name == "paper":
            model = "paper"
    _check_choice("model", model, MODEL_PRESET_NAMES)
    _check_choice("mode", mode, TRAINING_MODES)

    data = DataConfig(sizes=profile.corpus_sizes, image_size=profile.image_size)
    heads_only = mode == "heads_only"
    train = TrainConfig(
        mode=mode,
        epochs=profile.heads_epochs if heads_only else profile.epochs,
        batch_size=profile.batch_size,
        lr=HEADS_ONLY_LR if heads_only else END_TO_END_LR,
        seed=seed,
    )
    backbone = None
    if heads_only and model in ("tiny", "small"):
        shared = {key: value for key, value in overrides.items() if key.startswith("data.") or key == "model.preset"}
        backbone = experiment_config("clip", model, profile=profile, mode="end_to_end", seed=0,
                                     **{**shared, **(backbone_overrides or {})})
    config = ExperimentConfig(data=data, model=MODEL_DEFAULTS[model], loss=LOSS_PRESETS[loss],
                              train=train, backbone=backbone, name=loss)
    return config.replace(**overrides) if overrides else config


END_TO_END_LR = 1e-3
HEADS_ONLY_LR = 3e-3
