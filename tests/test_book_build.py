"""Build the whole book in the ci profile and check every page in a browser.

The build executes every chapter from a fresh kernel with an empty artifact
cache, so each chapter trains what it needs, and warnings fail it. The pages
are then opened in headless Chromium with no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "_build" / "test-artifacts"

pytestmark = pytest.mark.book


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages.extend(chapter["file"] for chapter in part.get("chapters", []))
    return pages


@pytest.fixture(scope="session")
def built_book() -> Path:
    cache = ROOT / "_build" / "ci-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, MEDGAP_CACHE=str(cache))
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--profile", "ci", "--fresh"],
        check=True, env=env, cwd=ROOT,
    )
    return ROOT / "_build" / "ci" / "_build" / "html"


@pytest.mark.parametrize("page", toc_pages())
def test_page_is_built(built_book, page):
    assert (built_book / f"{page}.html").is_file()


@pytest.mark.parametrize("page", toc_pages())
def test_page_loads_nothing_remote(built_book, page):
    html = (built_book / f"{page}.html").read_text(encoding="utf-8")
    remote = re.findall(r'<(?:script|img|link|iframe)\b[^>]*?(?:src|href)="(https?://[^"]+)"', html)
    assert remote == []


@pytest.mark.browser
@pytest.mark.parametrize("page", toc_pages())
def test_page_renders_in_browser(built_book, page):
    browser = pytest.importorskip("browser", reason="tests/browser.py is missing")
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed; scripts/test.sh installs it on Debian")
    html_path = built_book / f"{page}.html"
    expected_figures = html_path.read_text(encoding="utf-8").count('class="medgap-plotly"')

    report = browser.render_page(html_path, ARTIFACTS / f"{page.replace('/', '_')}.png")

    assert report.console_errors == []
    assert report.figures_drawn == expected_figures
