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


# NOTE: the cpu sizes are chosen so that the whole book executes in about 20
# minutes on a 2-core x86_64 machine; the ci sizes keep it to a few minutes.
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
