"""Student copies drop every solution and keep every check."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from medgap_utils.book import student_copy, write_student_copies

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


def tagged(notebook, tag):
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_no_solution_text_survives(path):
    notebook = nbformat.read(path, as_version=4)
    copy = student_copy(notebook)
    remaining = "\n".join(cell.source for cell in copy.cells)
    for solution in tagged(notebook, "solution"):
        assert solution.source not in remaining
    assert tagged(copy, "solution") == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_every_check_remains(path):
    notebook = nbformat.read(path, as_version=4)
    copy = student_copy(notebook)
    assert [cell.source for cell in tagged(copy, "check")] == [cell.source for cell in tagged(notebook, "check")]
    assert [cell.source for cell in tagged(copy, "exercise")] == [cell.source for cell in tagged(notebook, "exercise")]


def test_template_check_fails_without_solution(tmp_path):
    (copy_path,) = write_student_copies([ROOT / "book" / "_template.ipynb"], tmp_path)
    copy = nbformat.read(copy_path, as_version=4)
    namespace: dict = {}
    exec(tagged(copy, "exercise")[0].source, namespace)
    with pytest.raises(AssertionError, match="expected 42"):
        exec(tagged(copy, "check")[0].source, namespace)


def test_solution_without_exercise_is_rejected(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("answer = 1", metadata={"tags": ["solution"]})]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(ValueError, match="must directly follow its exercise"):
        write_student_copies([path], tmp_path / "out")


def test_missing_notebook_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ipynb"):
        write_student_copies([tmp_path / "missing.ipynb"], tmp_path / "out")
