"""Chapter conventions of the book: header, Colab install cell, template checks.

Every chapter notebook starts with

1. a Markdown cell: the title (``# ...``), an "Open in Colab" badge linking to
   the notebook on the repository's ``main`` branch, a "Learning goals" list
   and an "Expected run time" line;
2. one code cell that installs ``medgap_utils`` from the repository when the
   notebook runs in Google Colab and does nothing anywhere else.

:func:`new_chapter` writes a notebook that follows these rules and
:func:`check_chapter` lists every way a notebook breaks them.
``book/_template.ipynb`` is the documented template made by :func:`new_chapter`.
"""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import nbformat

BADGE_PNG = Path(__file__).with_name("colab-badge.png")
INSTALL_MARKER = '"google.colab" in sys.modules'
EXERCISE_TAGS = ("exercise", "solution", "check")


def in_colab() -> bool:
    """Return True when running inside Google Colab."""
    return "google.colab" in sys.modules


def colab_url(repository_url: str, notebook_path: str, branch: str = "main") -> str:
    """Return the Colab URL that opens ``notebook_path`` from a GitHub repository.

    ``notebook_path`` is relative to the repository root, e.g. ``book/data.ipynb``.
    """
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", repository_url)
    if match is None:
        raise ValueError(
            f"repository_url must look like https://github.com/OWNER/NAME, got {repository_url!r}"
        )
    owner, name = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/{notebook_path}"


def badge_markdown(repository_url: str, notebook_path: str) -> str:
    """Return the Markdown of an "Open in Colab" badge for one notebook.

    The badge image is inlined as a data URI, so it shows in the offline book
    and in Colab alike without fetching anything.
    """
    png = base64.b64encode(BADGE_PNG.read_bytes()).decode("ascii")
    url = colab_url(repository_url, notebook_path)
    return f"[![Open in Colab](data:image/png;base64,{png})]({url})"


def install_cell_source(repository_url: str) -> str:
    """Return the source of the guarded install cell for ``repository_url``."""
    return (
        "# In Google Colab, install medgap_utils from the book's repository.\n"
        "# Anywhere else this cell does nothing: the package is already installed.\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        f"if {INSTALL_MARKER}:\n"
        "    subprocess.run(\n"
        '        [sys.executable, "-m", "pip", "install", "--quiet",\n'
        f'         "medgap-utils @ git+{repository_url}"],\n'
        "        check=True,\n"
        "    )"
    )


def new_chapter(
    path: str | Path,
    title: str,
    learning_goals: list[str],
    run_time: str,
    repository_url: str,
    notebook_path: str | None = None,
) -> nbformat.NotebookNode:
    """Write a new chapter notebook at ``path`` that follows the conventions.

    Args:
        path: where to write the ``.ipynb`` file.
        title: chapter title, without the leading ``#``.
        learning_goals: one sentence per goal.
        run_time: the expected run time, e.g. ``"about 2 minutes on CPU (cpu profile)"``.
        repository_url: the repository that Colab installs from.
        notebook_path: the notebook's path inside the repository; defaults to
            ``book/<file name>``.
    """
    path = Path(path)
    notebook_path = notebook_path or f"book/{path.name}"
    goals = "\n".join(f"- {goal}" for goal in learning_goals)
    header = (
        f"# {title}\n\n"
        f"{badge_markdown(repository_url, notebook_path)}\n\n"
        f"**Learning goals**\n\n{goals}\n\n"
        f"**Expected run time:** {run_time}."
    )
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell(header),
        nbformat.v4.new_code_cell(install_cell_source(repository_url)),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return notebook


def check_chapter(notebook: nbformat.NotebookNode, repository_url: str, notebook_path: str) -> list[str]:
    """Return the ways ``notebook`` breaks the chapter conventions (empty when it follows them)."""
    problems: list[str] = []
    cells = notebook.cells
    if len(cells) < 2:
        return [f"{notebook_path}: a chapter needs a header cell and an install cell, found {len(cells)} cells"]

    header, install = cells[0], cells[1]
    if header.cell_type != "markdown" or not header.source.startswith("# "):
        problems.append(f"{notebook_path}: the first cell must be Markdown starting with '# <title>'")
    else:
        expected_url = colab_url(repository_url, notebook_path)
        if f"]({expected_url})" not in header.source:
            problems.append(f"{notebook_path}: the header has no Colab badge linking to {expected_url}")
        if "**Learning goals**" not in header.source:
            problems.append(f"{notebook_path}: the header has no '**Learning goals**' list")
        if "**Expected run time:**" not in header.source:
            problems.append(f"{notebook_path}: the header has no '**Expected run time:**' line")

    if install.cell_type != "code" or install.source.strip() != install_cell_source(repository_url):
        problems.append(
            f"{notebook_path}: the second cell must be the guarded install cell for {repository_url} "
            "(medgap_utils.book.install_cell_source)"
        )
    other_installs = [
        index for index, cell in enumerate(cells[2:], start=2)
        if cell.cell_type == "code" and re.search(r"pip install|%pip|!pip", cell.source)
    ]
    if other_installs:
        problems.append(f"{notebook_path}: only the install cell may install packages (cells {other_installs})")

    with_outputs = [
        index for index, cell in enumerate(cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    if with_outputs:
        problems.append(f"{notebook_path}: notebooks are stored without outputs (cells {with_outputs})")
    return problems


def student_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of a chapter for students: solution cells removed, outputs cleared.

    Cells tagged ``solution`` are dropped. ``exercise`` and ``check`` cells
    stay, so each check fails until the student solves its exercise.
    """
    copy = nbformat.reads(nbformat.writes(notebook), as_version=4)
    copy.cells = [cell for cell in copy.cells if "solution" not in cell.metadata.get("tags", [])]
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return copy


def write_student_copies(notebook_paths: list[str | Path], output_dir: str | Path) -> list[Path]:
    """Write a student copy of each chapter into ``output_dir`` and return their paths.

    Raises:
        FileNotFoundError: if a notebook does not exist.
        ValueError: if a chapter has a ``solution`` cell that is not directly
            preceded by an ``exercise`` cell, or an exercise without a ``check`` cell.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, notebook_paths):
        if not path.is_file():
            raise FileNotFoundError(f"Chapter notebook not found: {path}")
        notebook = nbformat.read(path, as_version=4)
        _check_exercises(notebook, path)
        target = output_dir / path.name
        nbformat.write(student_copy(notebook), target)
        written.append(target)
    return written


def _check_exercises(notebook: nbformat.NotebookNode, path: Path) -> None:
    tags = [set(cell.metadata.get("tags", [])) for cell in notebook.cells]
    for index, cell_tags in enumerate(tags):
        if "solution" in cell_tags and (index == 0 or "exercise" not in tags[index - 1]):
            raise ValueError(f"{path}: solution cell {index} must directly follow its exercise cell")
        if "exercise" in cell_tags and not any("check" in later for later in tags[index + 1:index + 3]):
            raise ValueError(f"{path}: exercise cell {index} needs a check cell within the next two cells")
