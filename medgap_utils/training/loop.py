"""The fit loop for both training modes, with history, snapshots and resumable checkpoints.

- end-to-end: towers and heads train on images and captions;
- heads-only: the towers are frozen (an end-to-end run's, or a pretrained
  preset's) and only the heads and the temperature train, on tower features
  cached on disk (:mod:`medgap_utils.training.features`).

Each epoch ends with a validation pass whose embeddings feed
``medgap_utils.metrics.gap_summary`` (logged with a ``val_`` prefix) and a
snapshot of the first ``train.snapshot_size`` validation pairs, then a
checkpoint. A run is keyed by its config: :func:`load_or_fit` returns the
cached result when it exists and otherwise trains (resuming a partial run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from medgap_utils.config import ExperimentConfig, cache_dir, config_key
from medgap_utils.losses import GapClosingLoss
from medgap_utils.models import MAX_LOGIT_SCALE, DualEncoder, build_model, embed, project_features
from medgap_utils.training.checkpoints import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from medgap_utils.training.distributed import DistributedContext, barrier, epoch_batches, init_distributed
from medgap_utils.training.features import load_or_compute_features

logger = logging.getLogger(__name__)

LOSS_TERMS = ("loss", "loss_clip", "loss_atp", "loss_cu", "loss_align", "loss_uniform")
TOWER_PREFIXES = ("image_tower.", "text_tower.")


@dataclasses.dataclass
class TrainingResult:
    """What a run produced.

    Attributes:
        config: the experiment config.
        model: the trained :class:`~medgap_utils.models.DualEncoder` (CPU, eval mode).
        history: one dict per epoch, where epoch 0 is before training. Keys:
            ``epoch``, ``train_loss`` and ``train_loss_<term>`` (None at epoch 0),
            ``weight_atp``, ``weight_cu``, ``temperature``, ``lr``, ``seconds``
            (wall time of the training pass), ``cpu_seconds`` (CPU time of this
            process over all threads), and the ``gap_summary`` validation metrics
            prefixed ``val_``.
        snapshots: per epoch (0 included), ``dict(epoch, image_embeddings, text_embeddings)``
            with (K, D) float32 arrays for the first K validation pairs.
        checkpoint_path: the checkpoint directory.
    """

    config: ExperimentConfig
    model: DualEncoder
    history: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    checkpoint_path: Path

    def final(self, key: str) -> Any:
        """Return ``key`` of the last epoch's history record."""
        return self.history[-1][key]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_run_dir(config: ExperimentConfig) -> Path:
    """Return the cache directory of the run of ``config``."""
    return cache_dir("runs", create=False) / config_key(config)


def _load_corpus(config: ExperimentConfig, progress: bool):
    # NOTE: under torchrun every process loads the corpus, so with an empty cache each one generates the
    # same phantom corpus and the atomic write keeps one copy; rank 0 alone could generate it behind a barrier.
    from medgap_utils.data import load_corpus

    return load_corpus(config.data, progress=progress)


def _trainable_state(model: DualEncoder, heads_only: bool) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if heads_only:
        state = {key: value for key, value in state.items() if not key.startswith(TOWER_PREFIXES)}
    return {key: value.detach().cpu().clone() for key, value in state.items()}


def _build(config: ExperimentConfig, corpus: Any, progress: bool) -> DualEncoder:
    """Build the model of ``config`` with fresh heads; towers from the backbone in heads-only mode."""
    backbone_state = None
    if config.train.mode == "heads_only" and config.backbone is not None:
        backbone = load_or_fit(config.backbone, corpus=corpus, progress=progress)
        backbone_state = {key: value for key, value in backbone.model.state_dict().items()
                          if key.startswith(TOWER_PREFIXES)}
    seed_everything(config.train.seed)
    model = build_model(config)
    if backbone_state is not None:
        missing = model.load_state_dict(backbone_state, strict=False)
        if missing.unexpected_keys:
            raise CheckpointError(f"backbone towers do not fit model.preset={config.model.preset!r}: "
                                  f"unexpected keys {missing.unexpected_keys[:3]}")
    if config.train.mode == "heads_only":
        model.freeze_towers()
    return model


def _optimizer(model: DualEncoder, config: ExperimentConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            # Biases, norm scales and logit_scale (ndim < 2) are not decayed, as in CLIP.
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([group for group in groups if group["params"]], lr=config.train.lr, foreach=True)


def _lr_multiplier(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = int(round(warmup_fraction * total_steps))

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return multiplier


class _TrainStep(nn.Module):
    """The differentiable part of one step, wrapped whole by DistributedDataParallel."""

    def __init__(self, model: DualEncoder, heads_only: bool) -> None:
        super().__init__()
        self.model = model
        self.heads_only = heads_only

    def forward(self, first: torch.Tensor, second: torch.Tensor):
        if self.heads_only:
            image_embeddings, text_embeddings = self.model.project(first, second)
        else:
            image_embeddings, text_embeddings = self.model(first, second)
        return image_embeddings, text_embeddings, self.model.logit_scale.exp()


def _non_finite_message(value: float, step: int, epoch: int, config: ExperimentConfig, temperature: float) -> str:
    return (
        f"Training stopped: the loss is {value} at step {step} (epoch {epoch}). Likely causes: a learning "
        f"rate too high (train.lr={config.train.lr}), a temperature too low (temperature={temperature:.4g}), "
        "non-finite images or cached features, or float16 overflow. Lower train.lr, keep train.grad_clip set, "
        "or check the inputs."
    )


class _Run:
    """State of one fit call: model, data, optimizer, history."""

    def __init__(self, config: ExperimentConfig, context: DistributedContext, corpus: Any,
                 features: dict | None, progress: bool) -> None:
        self.config = config
        self.context = context
        self.progress = progress and context.is_main
        self.heads_only = config.train.mode == "heads_only"
        self._corpus = corpus

        self.model = _build(config, corpus, progress)
        if self.heads_only:
            self.features = features if features is not None else load_or_compute_features(
                config, self.model, self.corpus, progress=self.progress)
            self.train_size = self.features["train"][0].shape[0]
        else:
            # The config's size avoids loading the corpus just to restore a finished run.
            self.train_size = len(corpus["train"]) if corpus is not None else config.data.sizes[0]
        self.model.to(context.device)

        self.steps_per_epoch = len(epoch_batches(self.train_size, config.train.batch_size, config.train.seed, 1,
                                                 context))
        self.total_steps = self.steps_per_epoch * config.train.epochs
        self.loss = GapClosingLoss.from_config(config.loss)
        self.optimizer = _optimizer(self.model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_multiplier(self.total_steps, config.train.warmup_fraction))
        self.step_module: nn.Module = _TrainStep(self.model, self.heads_only)
        if context.enabled:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.step_module = nn.parallel.DistributedDataParallel(self.step_module, device_ids=device_ids)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.history: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.epoch = 0
        self.step = 0

    @property
    def corpus(self):
        if self._corpus is None:
            self._corpus = _load_corpus(self.config, self.progress)
        return self._corpus

    # -- checkpoints -----------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "model": _trainable_state(self.model, self.heads_only),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "snapshots": [{key: torch.as_tensor(value) for key, value in snapshot.items()}
                          for snapshot in self.snapshots],
            "epoch": self.epoch,
            "step": self.step,
        }

    def restore(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"], strict=not self.heads_only)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.snapshots = _snapshots_to_numpy(state["snapshots"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = list(meta["history"])

    def save(self, path: Path, complete: bool) -> None:
        if self.context.is_main:
            meta = {"config": self.config.to_dict(), "config_key": config_key(self.config), "epoch": self.epoch,
                    "history": self.history, "complete": complete, "mode": self.config.train.mode}
            save_checkpoint(path, self.state(), meta)
        barrier(self.context)

    # -- validation ------------------------------------------------------
    def validation_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.heads_only:
            image_features, text_features = self.features["validation"]
            return project_features(self.model, image_features, text_features)
        return embed(self.model, self.corpus["validation"], batch_size=max(self.config.train.batch_size, 256),
                     num_workers=self.config.train.num_workers, progress=False)

    def record(self, losses: dict[str, float] | None, seconds: float, cpu_seconds: float) -> dict[str, Any]:
        from medgap_utils.metrics import gap_summary

        image_embeddings, text_embeddings = self.validation_embeddings()
        weights = self.loss.weights(min(self.step / max(1, self.total_steps), 1.0))
        record: dict[str, Any] = {"epoch": self.epoch}
        for term in LOSS_TERMS:
            record[f"train_{term}"] = None if losses is None else losses[term]
        record.update({
            "weight_atp": weights["atp"], "weight_cu": weights["cu"],
            "temperature": self.model.temperature, "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": seconds, "cpu_seconds": cpu_seconds,
        })
        for key, value in gap_summary(image_embeddings, text_embeddings).items():
            record[f"val_{key}"] = float(value) if np.ndim(value) == 0 else value
        count = self.config.train.snapshot_size
        self.snapshots.append({
            "epoch": self.epoch,
            "image_embeddings": image_embeddings[:count].numpy().astype(np.float32),
            "text_embeddings": text_embeddings[:count].numpy().astype(np.float32),
        })
        self.history.append(record)
        return record

    # -- training --------------------------------------------------------
    def local_batches(self, epoch: int):
        batches = epoch_batches(self.train_size, self.config.train.batch_size, self.config.train.seed, epoch,
                                self.context)
        if self.heads_only:
            image_features, text_features = self.features["train"]
            for indices in batches:
                yield image_features[indices], text_features[indices]
            return

        from medgap_utils.data import make_dataloader

        subset = self.corpus["train"].select(torch.cat(batches).tolist())
        loader = make_dataloader(
            subset, len(batches[0]), transform=self.model.image_transform(train=self.config.data.augment),
            tokenizer=self.model.tokenizer, shuffle=False, seed=self.config.train.seed + epoch,
            num_workers=self.config.train.num_workers, drop_last=True,
        )
        for batch in loader:
            yield batch["images"], batch["texts"]

    def train_epoch(self, epoch: int) -> dict[str, float]:
        config, device = self.config, self.context.device
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.train.amp and device.type == "cuda")
        self.model.train()
        if self.heads_only:
            self.model.freeze_towers()
        sums = dict.fromkeys(LOSS_TERMS, 0.0)
        steps = 0
        bar = tqdm(self.local_batches(epoch), total=self.steps_per_epoch, desc=f"epoch {epoch}",
                   disable=not self.progress, leave=False)
        for first, second in bar:
            first = first.to(device, non_blocking=True)
            second = second.to(device, non_blocking=True)
            progress = self.step / max(1, self.total_steps)

            with autocast:
                image_embeddings, text_embeddings, logit_scale = self.step_module(first, second)
            output = self.loss(image_embeddings.float(), text_embeddings.float(), logit_scale.float(), progress)

            value = float(output.total.detach())
            if not math.isfinite(value):
                raise FloatingPointError(_non_finite_message(value, self.step + 1, epoch, config,
                                                             self.model.temperature))

            self.optimizer.zero_grad(set_to_none=True)
            output.total.backward()
            if config.train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.trainable, config.train.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            with torch.no_grad():
                self.model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)

            for key, term in output.as_floats().items():
                sums[key] += term
            steps += 1
            self.step += 1
            bar.set_postfix(loss=f"{value:.3f}")
        return {key: total / max(1, steps) for key, total in sums.items()}


def _snapshots_to_numpy(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted = []
    for snapshot in snapshots:
        converted.append({
            "epoch": int(snapshot["epoch"]),
            "image_embeddings": np.asarray(snapshot["image_embeddings"], dtype=np.float32),
            "text_embeddings": np.asarray(snapshot["text_embeddings"], dtype=np.float32),
        })
    return converted


def _result(run: _Run, path: Path) -> TrainingResult:
    model = run.model.to("cpu").eval()
    return TrainingResult(config=run.config, model=model, history=run.history, snapshots=run.snapshots,
                          checkpoint_path=path)


def fit(
    config: ExperimentConfig,
    *,
    corpus: Any = None,
    features: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
    device: str | torch.device | None = None,
) -> TrainingResult:
    """Train ``config`` and return the result; the checkpoint is rewritten after every epoch.

    Args:
        config: the experiment (``train.mode`` picks end-to-end or heads-only).
        corpus: a ``DatasetDict`` with ``train`` and ``validation`` splits
            (default: the phantom corpus of ``config.data``).
        features: heads-only only: ``{split: (image_features, text_features)}``
            to train on instead of the cached tower features.
        run_dir: where the checkpoint goes (default: the cache, keyed by config).
        resume: continue from a partial checkpoint of the same config in
            ``run_dir`` (and return a complete one as it is) instead of starting over.
        progress: show progress bars.
        callbacks: called on the main process after each epoch's checkpoint
            with that epoch's history record.
        device: default CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else CPU.

    Raises:
        TypeError: ``config`` is not an ExperimentConfig.
        ValueError: a batch size the training split or the process count cannot serve.
        FloatingPointError: the loss became non-finite (the message gives the step).
        CheckpointError: ``resume`` found a corrupted checkpoint.
    """
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig (medgap_utils.config.experiment_config), "
                        f"got {type(config).__name__}")
    if features is not None and config.train.mode != "heads_only":
        raise ValueError("features are only used with train.mode='heads_only'")
    context = init_distributed(device)
    path = Path(run_dir) if run_dir is not None else default_run_dir(config)
    checkpoint = path / "checkpoint"

    saved = None
    if resume and (checkpoint / "meta.json").is_file():
        meta = read_meta(checkpoint)
        if meta.get("config_key") != config_key(config):
            logger.warning("ignoring checkpoint %s: it belongs to another config", checkpoint)
        elif meta.get("complete"):
            return _load_complete(config, checkpoint, corpus, progress)
        else:
            saved = load_checkpoint(checkpoint, map_location=context.device)

    if config.train.mode == "heads_only" and context.device.type == "cpu":
        if config.backbone is not None and saved is None:
            load_or_fit(config.backbone, corpus=corpus, progress=progress)  # trains with every thread
        # Heads-only steps are small matrix products, where a second OpenMP
        # thread costs more than it saves and, on a busy machine, slows steps down
        # by an order of magnitude (spin-waiting).
        with _torch_threads(1):
            return _fit(config, context, corpus, features, progress, callbacks, checkpoint, saved)
    return _fit(config, context, corpus, features, progress, callbacks, checkpoint, saved)


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fit(config: ExperimentConfig, context: DistributedContext, corpus: Any, features: Any, progress: bool,
         callbacks: Sequence[Callable[[dict[str, Any]], None]], checkpoint: Path, saved: Any) -> TrainingResult:
    run = _Run(config, context, corpus, features, progress)
    if saved is not None:
        run.restore(*saved)
        logger.info("resuming %s at epoch %d of %d", checkpoint, run.epoch, config.train.epochs)

    if run.epoch == 0 and not run.history:
        run.record(None, 0.0, 0.0)
    epochs = tqdm(range(run.epoch + 1, config.train.epochs + 1), desc=config.name or "training",
                  disable=not run.progress)
    for epoch in epochs:
        started, started_cpu = time.perf_counter(), time.process_time()
        losses = run.train_epoch(epoch)
        run.epoch = epoch
        record = run.record(losses, time.perf_counter() - started, time.process_time() - started_cpu)
        run.save(checkpoint, complete=epoch == config.train.epochs)
        epochs.set_postfix(loss=f"{losses['loss']:.3f}")
        if context.is_main:
            logger.info("epoch %d/%d: loss %.4f, val modality_gap %s", epoch, config.train.epochs,
                        losses["loss"], record.get("val_modality_gap"))
            for callback in callbacks:
                callback(record)
    return _result(run, checkpoint)


def _load_complete(config: ExperimentConfig, checkpoint: Path, corpus: Any, progress: bool) -> TrainingResult:
    """Rebuild the model of a finished run from its checkpoint, without touching the training data."""
    state, meta = load_checkpoint(checkpoint)
    model = _build(config, corpus, progress)
    model.load_state_dict(state["model"], strict=config.train.mode != "heads_only")
    return TrainingResult(config=config, model=model.eval(), history=list(meta["history"]),
                          snapshots=_snapshots_to_numpy(state["snapshots"]), checkpoint_path=checkpoint)


def load_result(config: ExperimentConfig, run_dir: str | Path | None = None, *, corpus: Any = None) -> TrainingResult:
    """Load the complete cached run of ``config`` (model weights, history and snapshots).

    Raises:
        CheckpointError: no complete, intact checkpoint of this config.
    """
    path = (Path(run_dir) if run_dir is not None else default_run_dir(config)) / "checkpoint"
    meta = read_meta(path)
    if not meta.get("complete") or meta.get("config_key") != config_key(config):
        raise CheckpointError(f"The checkpoint at {path} is not a complete run of this config; "
                              "train it with medgap_utils.training.load_or_fit.")
    return _load_complete(config, path, corpus, progress=False)


def load_or_fit(config: ExperimentConfig, *, corpus: Any = None, run_dir: str | Path | None = None,
                progress: bool = True, **kwargs: Any) -> TrainingResult:
    """Return the cached run of ``config`` if complete, else train it (resuming a partial run).

    This is what the chapters call: the first chapter that needs a model
    trains it, later ones load it. Arguments are those of :func:`fit`.
    """
    return fit(config, corpus=corpus, run_dir=run_dir, resume=True, progress=progress, **kwargs)
