"""Atomic writes for cached artifacts.

Every artifact the package writes (corpora, features, checkpoints, result
tables) goes through these helpers, so an interrupted run leaves either the
previous file or the new one, never a truncated file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    The temporary path is in the same directory, so the final ``os.replace``
    is atomic on POSIX file systems. It may be written as a file or a
    directory. On an exception the temporary path is removed and ``path`` is
    left untouched.

    NOTE: replacing an existing directory takes two renames, so another
    process may briefly find ``path`` missing. It never finds a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = temporary / "payload"
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            # os.replace cannot overwrite a non-empty directory, so the old one
            # is moved aside first and deleted after the new one is in place.
            retired = temporary / "retired"
            os.replace(path, retired)
        os.replace(target, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8) and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
