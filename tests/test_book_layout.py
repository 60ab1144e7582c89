"""The book's layout: chapters follow the template and agree on the repository URL."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from medgap_utils.book import check_chapter, install_cell_source, new_chapter

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPOSITORY_URL = CONFIG["repository"]["url"]


def toc_files() -> list[str]:
    """Return every file named in _toc.yml, root first, without extensions."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


def chapter_notebooks() -> list[Path]:
    return [ROOT / f"{name}.ipynb" for name in toc_files() if (ROOT / f"{name}.ipynb").exists()]


def test_toc_files_exist():
    for name in toc_files():
        candidates = [ROOT / f"{name}{suffix}" for suffix in (".md", ".ipynb")]
        assert any(path.exists() for path in candidates), f"_toc.yml names {name}, which has no .md or .ipynb file"


def test_pyproject_repository_url_matches_config():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["urls"]["Repository"] == REPOSITORY_URL


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda path: path.stem)
def test_chapter_follows_template(path):
    notebook = nbformat.read(path, as_version=4)
    problems = check_chapter(notebook, REPOSITORY_URL, path.relative_to(ROOT).as_posix())
    assert problems == []


@pytest.mark.parametrize("path", chapter_notebooks(), ids=lambda path: path.stem)
def test_chapter_install_cell_uses_repository_url(path):
    notebook = nbformat.read(path, as_version=4)
    urls = re.findall(r"git\+(https://[^\s\"']+)", notebook.cells[1].source)
    assert urls == [REPOSITORY_URL]


def test_template_follows_template():
    template = ROOT / "book" / "_template.ipynb"
    notebook = nbformat.read(template, as_version=4)
    assert check_chapter(notebook, REPOSITORY_URL, "book/_template.ipynb") == []


def test_check_chapter_reports_missing_parts(tmp_path):
    path = tmp_path / "broken.ipynb"
    notebook = new_chapter(path, "Broken", ["goal"], "1 minute", REPOSITORY_URL)
    notebook.cells[0].source = "# Broken\n\nNo badge, goals or run time."
    notebook.cells[1].source = "import sys"
    problems = check_chapter(notebook, REPOSITORY_URL, "book/broken.ipynb")
    assert len(problems) == 4, problems


def test_check_chapter_rejects_outputs(tmp_path):
    notebook = new_chapter(tmp_path / "ran.ipynb", "Ran", ["goal"], "1 minute", REPOSITORY_URL)
    notebook.cells[1].execution_count = 1
    problems = check_chapter(notebook, REPOSITORY_URL, "book/ran.ipynb")
    assert any("without outputs" in problem for problem in problems)


def test_install_cell_does_nothing_outside_colab():
    namespace: dict = {}
    exec(install_cell_source(REPOSITORY_URL), namespace)
    assert "subprocess" in namespace


def test_requirements_pin_torch_pair():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "torch==2.14.1" in lines
    assert "torchvision==0.29.1" in lines


def test_config_fails_on_cell_errors():
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert CONFIG["execute"]["allow_errors"] is False
    assert CONFIG["only_build_toc_files"] is True
