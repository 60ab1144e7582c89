"""The ``train`` subcommand: ``python -m medgap_utils train --preset tiny --loss clip_atp_cu``.

Under ``torchrun --nproc_per_node N -m medgap_utils train ...`` every process
runs this command and :func:`~medgap_utils.training.fit` splits each batch.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from medgap_utils.config import (
    CORPUS_NAMES,
    HEAD_TYPES,
    LOSS_PRESETS,
    MODEL_PRESET_NAMES,
    SCHEDULE_NAMES,
    TRAINING_MODES,
)


def add_train_parser(commands: argparse._SubParsersAction) -> None:
    """Register the ``train`` subcommand on ``commands``."""
    parser = commands.add_parser(
        "train", help="train one model and write its checkpoint and history",
        description="Train one dual encoder. Defaults come from the run-time profile and the loss preset; "
                    "each option below overrides one field. Finished runs are cached by config and reloaded.",
    )
    parser.add_argument("--loss", choices=list(LOSS_PRESETS), default="clip",
                        help="loss preset (default: clip, learned temperature)")
    parser.add_argument("--preset", choices=list(MODEL_PRESET_NAMES), default=None,
                        help="tower preset (default: tiny on CPU profiles, small on gpu, paper on paper)")
    parser.add_argument("--mode", choices=list(TRAINING_MODES), default="end_to_end",
                        help="train towers and heads, or only the heads on cached frozen tower features")
    parser.add_argument("--profile", choices=["ci", "cpu", "gpu", "paper"], default=None,
                        help="run-time profile for sizes (default: $MEDGAP_PROFILE, else the hardware's)")
    parser.add_argument("--corpus", choices=list(CORPUS_NAMES), default=None,
                        help="training data: the embedded phantoms (default) or a ROCO version streamed from "
                             "the Hugging Face hub, capped at the profile's split sizes")
    parser.add_argument("--epochs", type=int, help="passes over the training split")
    parser.add_argument("--batch-size", type=int, help="pairs per optimizer step, across all processes")
    parser.add_argument("--lr", type=float, help="peak AdamW learning rate (after warmup, then cosine decay)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--lambda-atp", type=float, help="weight of Align True Pairs (>= 0)")
    parser.add_argument("--lambda-cu", type=float, help="weight of Centroid Uniformity (>= 0)")
    parser.add_argument("--schedule", choices=list(SCHEDULE_NAMES),
                        help="constant weights, or the ramps ATP x1->x2 over the second half, CU x1->x0 at 20-70%%")
    parser.add_argument("--temperature", type=float, help="InfoNCE temperature tau at the start (>= 0.01)")
    temperature = parser.add_mutually_exclusive_group()
    temperature.add_argument("--learn-temperature", dest="learn_temperature", action="store_true", default=None,
                             help="learn tau")
    temperature.add_argument("--fixed-temperature", dest="learn_temperature", action="store_false",
                             help="keep tau fixed")
    parser.add_argument("--embed-dim", type=int, help="dimension of the shared embedding space")
    parser.add_argument("--head", choices=list(HEAD_TYPES), help="projection head type")
    parser.add_argument("--output", type=Path, default=None,
                        help="also copy the checkpoint and history.json to this directory")
    parser.add_argument("--restart", action="store_true",
                        help="train from scratch even if a cached or partial run exists")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=run_train)


_OVERRIDES = {
    "corpus": "data.corpus", "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr",
    "lambda_atp": "loss.lambda_atp", "lambda_cu": "loss.lambda_cu", "schedule": "loss.schedule",
    "temperature": "loss.temperature", "learn_temperature": "loss.learn_temperature",
    "embed_dim": "model.embed_dim", "head": "model.head",
}


def config_from_args(args: argparse.Namespace):
    """Return the :class:`~medgap_utils.config.ExperimentConfig` that ``args`` describe."""
    from medgap_utils.config import experiment_config

    overrides: dict[str, Any] = {field: getattr(args, name) for name, field in _OVERRIDES.items()
                                 if getattr(args, name) is not None}
    return experiment_config(args.loss, args.preset, profile=args.profile, mode=args.mode, seed=args.seed,
                             **overrides)


def run_train(args: argparse.Namespace) -> int:
    """Train the run of ``args``; print the checkpoint path and the final validation metrics."""
    from medgap_utils.io import write_json_atomic
    from medgap_utils.training import fit
    from medgap_utils.training.distributed import init_distributed

    try:
        config = config_from_args(args)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    context = init_distributed()
    try:
        result = fit(config, resume=not args.restart, progress=not args.no_progress)
    finally:
        if context.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()
    if not context.is_main:
        return 0

    history_path = write_json_atomic(result.checkpoint_path.parent / "history.json", result.history)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        shutil.copytree(result.checkpoint_path, args.output / "checkpoint", dirs_exist_ok=True)
        history_path = write_json_atomic(args.output / "history.json", result.history)
    final = result.history[-1]
    print(f"checkpoint: {result.checkpoint_path}")
    print(f"history: {history_path}")
    for key in ("train_loss", "val_modality_gap", "val_true_pair_cosine", "val_true_pair_angle", "temperature"):
        value = final.get(key)
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0
