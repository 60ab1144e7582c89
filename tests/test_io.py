"""Atomic writes leave the old file or the new one, never a partial file."""

from __future__ import annotations

import json

import pytest

from medgap_utils.io import atomic_path, write_json_atomic, write_text_atomic


def test_write_json_roundtrip(tmp_path):
    path = write_json_atomic(tmp_path / "result.json", {"gap": 0.5})
    assert json.loads(path.read_text()) == {"gap": 0.5}


def test_failed_write_keeps_old_file(tmp_path):
    path = write_text_atomic(tmp_path / "table.md", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("partial")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [item.name for item in tmp_path.iterdir()] == ["table.md"]


def test_directory_is_replaced(tmp_path):
    target = tmp_path / "corpus"
    for content in ("first", "second"):
        with atomic_path(target) as temporary:
            temporary.mkdir()
            (temporary / "data.txt").write_text(content)
    assert (target / "data.txt").read_text() == "second"
    assert [item.name for item in tmp_path.iterdir()] == ["corpus"]
