"""Checkpoints: written atomically, verified by checksum, loaded with ``weights_only=True``.

A checkpoint is a directory with two files:

- ``state.pt``: tensors and plain containers only (model and optimizer
  state, RNG state, embedding snapshots), so ``torch.load(weights_only=True)``
  can read it without executing code from the file;
- ``meta.json``: the config, the history, whether the run is complete and the
  SHA-256 of ``state.pt``.

The directory is replaced in one ``os.replace``, so a crash while saving leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from medgap_utils.io import atomic_path

STATE_FILE = "state.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupted."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) and ``meta`` (JSON) to the directory ``path``.

    Returns the checkpoint directory. The write is atomic: readers see the old
    checkpoint or the new one.
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.mkdir()
        torch.save(state, temporary / STATE_FILE)
        meta = {**meta, "format_version": FORMAT_VERSION, "sha256": _sha256(temporary / STATE_FILE)}
        (temporary / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Return the metadata of the checkpoint at ``path`` without loading its tensors.

    Raises:
        CheckpointError: no checkpoint there, or its metadata is unreadable.
    """
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"No checkpoint at {path}: {META_FILE} is missing.")
    try:
        return json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"Checkpoint metadata {meta_path} is unreadable ({error}); delete {path} "
                              "to retrain.") from error


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], dict]:
    """Load and verify the checkpoint at ``path``: return ``(state, meta)``.

    Raises:
        CheckpointError: missing files, a checksum that does not match (a
            truncated or modified ``state.pt``), or a file ``torch.load`` rejects.
    """
    path = Path(path)
    meta = read_meta(path)
    state_path = path / STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"Checkpoint {path} has no {STATE_FILE}; delete the directory to retrain.")
    actual = _sha256(state_path)
    if actual != meta.get("sha256"):
        raise CheckpointError(
            f"Checkpoint {state_path} is corrupted: its SHA-256 is {actual[:12]}…, the metadata records "
            f"{str(meta.get('sha256'))[:12]}…. Delete {path} to retrain."
        )
    try:
        state = torch.load(state_path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError here
        raise CheckpointError(f"Checkpoint {state_path} could not be loaded ({error}); delete {path} "
                              "to retrain.") from error
    return state, meta
