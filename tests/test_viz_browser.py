"""Every kind of viz figure draws in headless Chromium from a built book page.

The test builds a two-page Jupyter Book in a temporary folder through the
book's own path: notebooks executed with ``PLOTLY_RENDERER=plotly_mimetype``,
figures drawn by the medgap mime renderer with the plotly.js the site serves
from its static folder, no network. Screenshots land in
``_build/test-artifacts``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import plotly
import pytest
import yaml

import browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "_build" / "test-artifacts"

pytestmark = pytest.mark.browser

def figure_errors(report: browser.PageReport) -> list[str]:
    """Return the page's console errors."""
    return list(report.console_errors)

SETUP_CELL = '''\
import numpy as np
import pandas as pd
from medgap_utils import viz


def paired(count, dim, gap, seed=0):
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(count, dim))
    offset = np.zeros(dim)
    offset[0] = gap
    image = content + offset
    text = content - offset + 0.3 * rng.normal(size=(count, dim))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    anatomy = rng.choice(["chest", "head", "knee"], count)
    labels = {"anatomy": anatomy.tolist(), "finding": rng.choice(["normal", "nodule"], count).tolist()}
    captions = [f"{part} radiograph number {row}" for row, part in enumerate(anatomy)]
    return image.astype(np.float32), text.astype(np.float32), labels, captions
'''

# One cell per figure kind; each ends in the figure, so the notebook shows it.
FIGURE_CELLS = {
    "projection 2-D (SVG)": '''\
image, text, labels, captions = paired(300, 16, 1.0)
viz.projection_figure(image, text, labels, captions, color_by="anatomy")''',
    "projection t-SNE": '''\
viz.projection_figure(image, text, labels, captions, method="tsne")''',
    "projection 3-D": '''\
viz.projection_figure(image, text, labels, captions, dims=3)''',
    "training curves": '''\
history = [{"epoch": e, "train_loss": 3 - 0.4 * e, "train_loss_clip": 2.6 - 0.4 * e, "train_loss_atp": 0.2,
            "train_loss_cu": -1.0, "temperature": 0.07, "lr": 1e-3 / (1 + e), "val_modality_gap": 1.2 - 0.2 * e,
            "val_true_pair_cosine": 0.2 + 0.1 * e, "val_true_pair_angle": 75 - 6 * e} for e in range(5)]
viz.training_curves_figure(history)''',
    "training animation": '''\
snapshots = []
for epoch, gap in enumerate([1.5, 1.1, 0.7, 0.4, 0.2]):
    snap_image, snap_text, snap_labels, snap_captions = paired(150, 16, gap)
    snapshots.append({"epoch": epoch, "image_embeddings": snap_image, "text_embeddings": snap_text})
viz.training_animation_figure(snapshots, history, snap_labels, snap_captions)''',
    "sweep with slider": '''\
sweep = pd.DataFrame([{"lambda_atp": a, "lambda_cu": c, "seed": s, "modality_gap": 1 - 0.4 * a + 0.02 * s,
                       "i2t_R@1": 20 + 8 * a + 2 * c + s}
                      for a in (0, 0.5, 1, 2) for c in (0, 1) for s in range(3)])
viz.sweep_figure(sweep, "lambda_atp", {"gap (embedding units)": "modality_gap", "recall@1 (%)": "i2t_R@1"},
                 slider="lambda_cu")''',
    "gap shift slider": '''\
shifts = [0.0, 0.25, 0.5, 0.75, 1.0]
shift_table = [{"shift": s, "i2t_R@1": 30 - 5 * s, "t2i_R@1": 28 - 4 * s, "v_measure": 0.4 + 0.3 * s} for s in shifts]
shifted = []
for s in shifts:
    shift_image, shift_text, _, _ = paired(150, 16, 1.5 * (1 - s))
    shifted.append({"shift": s, "image_embeddings": shift_image, "text_embeddings": shift_text})
viz.gap_shift_figure(shift_table, {"recall@1 (%)": ["i2t_R@1", "t2i_R@1"], "V-measure (0 to 1)": "v_measure"},
                     shifted, snap_labels)''',
    "gap shift curves only": '''\
viz.gap_shift_figure(shift_table, {"recall@1 (%)": ["i2t_R@1", "t2i_R@1"], "V-measure (0 to 1)": "v_measure"})''',
    "unit sphere": '''\
rng = np.random.default_rng(1)
cone_image = np.array([1.0, 0.3, 0.2]) + 0.25 * rng.normal(size=(120, 3))
cone_text = np.array([0.2, 1.0, 0.3]) + 0.25 * rng.normal(size=(120, 3))
cone_image /= np.linalg.norm(cone_image, axis=1, keepdims=True)
cone_text /= np.linalg.norm(cone_text, axis=1, keepdims=True)
viz.sphere_figure(cone_image, cone_text)''',
    "retrain panel fallback": '''\
viz.retrain_panel(lambda **values: None, fallback=viz.sweep_figure(sweep, "lambda_cu", ["modality_gap"]))''',
}

LARGE_CELL = '''\
large_image, large_text, large_labels, _ = paired(10_000, 32, 1.0)
viz.projection_figure(large_image, large_text, large_labels)'''

# Applies, in the page, what each control of each figure does when clicked:
# every dropdown and button entry, the last step of every slider, and the
# last animation frame. Returns how many actions ran.
EXERCISE_CONTROLS_SCRIPT = r"""
(async () => {
  let actions = 0;
  for (const gd of document.querySelectorAll(".medgap-plotly")) {
    for (const menu of gd.layout.updatemenus || []) {
      for (const button of menu.buttons || []) {
        if (["restyle", "relayout", "update"].includes(button.method)) {
          await Plotly[button.method](gd, ...button.args);
          actions += 1;
        }
      }
    }
    for (const slider of gd.layout.sliders || []) {
      const step = slider.steps[slider.steps.length - 1];
      if (step.method === "animate") {
        await Plotly.animate(gd, ...step.args);
      } else {
        await Plotly[step.method](gd, ...step.args);
      }
      actions += 1;
    }
  }
  return actions;
})()
"""


def write_notebook(path: Path, cells: list[str]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, path)


def write_book(folder: Path) -> None:
    """Write a two-page book whose Sphinx settings are the real book's."""
    book_config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    sphinx_config = dict(book_config["sphinx"]["config"])
    # MathJax is vendored by scripts/build_book.py with npm; these pages have
    # no math, so they do without it.
    sphinx_config.pop("mathjax_path", None)
    sphinx_config.pop("bibtex_reference_style", None)
    config = {
        "title": "viz figures",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "force", "timeout": 600, "allow_errors": False},
        "sphinx": {"config": sphinx_config, "extra_extensions": book_config["sphinx"]["extra_extensions"]},
    }
    (folder / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: figures\nchapters:\n  - file: large\n", encoding="utf-8"
    )
    write_notebook(folder / "figures.ipynb", [SETUP_CELL, *FIGURE_CELLS.values()])
    write_notebook(folder / "large.ipynb", [SETUP_CELL, LARGE_CELL])

    # The same copy that scripts/build_book.py makes into _vendor.
    for static in sphinx_config["html_static_path"]:
        (folder / static).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                        folder / static / "plotly.min.js")


@pytest.fixture(scope="module")
def built_pages(tmp_path_factory) -> Path:
    if browser.chromium_path() is None:
        pytest.skip("chromium is not installed; scripts/test.sh installs it on Debian (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("viz-book")
    write_book(folder)
    env = dict(os.environ, PLOTLY_RENDERER="plotly_mimetype", MEDGAP_CACHE=str(folder / "cache"),
               PYTHONHASHSEED="0")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    subprocess.run(
        [str(jupyter_book), "build", str(folder), "--builder", "html", "-W", "--keep-going"],
        check=True, env=env, cwd=folder, capture_output=False,
    )
    return folder / "_build" / "html"


def test_pages_embed_figures_without_cdn(built_pages):
    html = (built_pages / "figures.html").read_text(encoding="utf-8")

    assert html.count('class="medgap-plotly"') == len(FIGURE_CELLS)
    assert "cdn.plot.ly" not in html
    assert (built_pages / "_static" / "plotly.min.js").is_file()


def test_every_figure_kind_draws(built_pages):
    report = browser.render_page(built_pages / "figures.html", ARTIFACTS / "viz-figures.png")

    assert report.plotly_loaded
    assert report.remote_requests == []
    assert figure_errors(report) == []
    assert report.figures_expected == len(FIGURE_CELLS)
    assert report.figures_drawn == len(FIGURE_CELLS)
    for name, figure in zip(FIGURE_CELLS, report.figures):
        assert figure.color_fraction > 0.002, f"{name}: no colored marks in the screenshot"


def test_figure_controls_run_without_errors(built_pages):
    report = browser.render_page(
        built_pages / "figures.html", ARTIFACTS / "viz-figures-after-controls.png",
        script=EXERCISE_CONTROLS_SCRIPT,
    )

    assert report.script_result >= 20
    assert figure_errors(report) == []
    assert report.figures_drawn == len(FIGURE_CELLS)


def test_large_projection_draws_with_webgl(built_pages):
    report = browser.render_page(built_pages / "large.html", ARTIFACTS / "viz-large.png")

    assert report.webgl_available
    assert figure_errors(report) == []
    assert report.figures_drawn == 1
    figure = report.figures[0]
    assert figure.trace_types[:2] == ["scattergl", "scattergl"]
    assert figure.color_fraction > 0.01
    # NOTE: reported, not asserted: the main-thread long tasks while the
    # 10k-point page loads depend on the machine and its load.
    print(f"10k-pair page: drawn after {report.seconds_to_draw:.1f} s, long tasks (ms): {report.long_tasks_ms}")


def test_svg_figures_draw_without_webgl(built_pages):
    report = browser.render_page(
        built_pages / "figures.html", ARTIFACTS / "viz-figures-no-webgl.png", extra_flags=("--disable-webgl",)
    )

    assert not report.webgl_available
    by_name = dict(zip(FIGURE_CELLS, report.figures))
    for name in ("projection 2-D (SVG)", "training curves", "sweep with slider", "gap shift curves only"):
        assert by_name[name].drawn, f"{name} needs no WebGL but did not draw"
    assert by_name["projection 3-D"].webgl_notice
