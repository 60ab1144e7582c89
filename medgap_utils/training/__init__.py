"""Training engine: the fit loop (end-to-end and heads-only), checkpoints, torchrun support.

The chapters call :func:`load_or_fit`; the command line calls :func:`fit`.
"""

from medgap_utils.training.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from medgap_utils.training.distributed import DistributedContext, init_distributed
from medgap_utils.training.features import features_path, load_or_compute_features
from medgap_utils.training.loop import (
    TrainingResult,
    default_run_dir,
    fit,
    load_or_fit,
    load_result,
    seed_everything,
)

__all__ = [
    "CheckpointError",
    "DistributedContext",
    "TrainingResult",
    "default_run_dir",
    "features_path",
    "fit",
    "init_distributed",
    "load_checkpoint",
    "load_or_compute_features",
    "load_or_fit",
    "load_result",
    "save_checkpoint",
    "seed_everything",
]
