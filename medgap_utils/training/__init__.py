"""Training engine: the fit loop (end-to-end and heads-only), checkpoints, torchrun support.

The chapters call :func:`load_or_fit`; the command line calls :func:`fit`.
Names are imported on first use, so ``medgap_utils.training.cli`` (the
``train`` subcommand's parser) loads without torch and ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "checkpoints",
    "load_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints",
    "DistributedContext": "distributed",
    "init_distributed": "distributed",
    "features_path": "features",
    "load_or_compute_features": "features",
    "TrainingResult": "loop",
    "default_run_dir": "loop",
    "fit": "loop",
    "load_or_fit": "loop",
    "load_result": "loop",
    "seed_everything": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
