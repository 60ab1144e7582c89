"""Build the medgap book with every chapter executed.

Usage: python scripts/build_book.py [--profile NAME] [--fresh]

The build reads ``_config.yml`` and changes only what depends on the run.
The notebook execution cache gets one folder per profile, so a ``ci`` build
never serves outputs computed in the ``cpu`` profile. ``--fresh`` executes
every chapter from a fresh kernel instead of reusing that cache.
Warnings fail the build. The HTML lands in ``_build/<profile>/_build/html``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "_vendor"
MATHJAX_VERSION = "3.2.2"


def vendor_assets() -> None:
    """Copy plotly.js and MathJax into ``_vendor`` so pages need no CDN."""
    import plotly

    VENDOR.mkdir(exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(plotly_js, VENDOR / "plotly.min.js")

    mathjax = VENDOR / "mathjax"
    if (mathjax / "tex-chtml.js").exists():
        return
    npm_prefix = ROOT / ".cache" / "npm"
    npm_prefix.mkdir(parents=True, exist_ok=True)
    if shutil.which("npm") is None:
        raise SystemExit("npm is required to fetch MathJax for offline math; install Node.js and npm.")
    subprocess.run(
        ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(npm_prefix),
         f"mathjax@{MATHJAX_VERSION}"],
        check=True,
    )
    shutil.copytree(npm_prefix / "node_modules" / "mathjax" / "es5", mathjax, dirs_exist_ok=True)


def write_config(profile: str, fresh: bool, output: Path) -> Path:
    """Write the build's config next to its output and return its path."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    execute = config.setdefault("execute", {})
    execute["execute_notebooks"] = "force" if fresh else "cache"
    execute["cache"] = str(ROOT / ".jupyter_cache" / profile)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "_config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def build(profile: str, fresh: bool) -> Path:
    """Build the book in ``profile`` and return the folder of the HTML."""
    vendor_assets()
    output = ROOT / "_build" / profile
    config_path = write_config(profile, fresh, output)

    env = dict(os.environ)
    env["MEDGAP_PROFILE"] = profile
    env["PLOTLY_RENDERER"] = "plotly_mimetype"
    env.setdefault("MEDGAP_CACHE", str(ROOT / ".cache" / "medgap"))
    env.setdefault("PYTHONHASHSEED", "0")
    # Spinning OpenMP threads slowed a tiny-model step 3.5x at a load average
    # of 15 on 2 cores, and sleeping ones did not (bench/threads.py).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Progress bars in a kernel are ipywidgets, whose saved state would make
    # each page load the widget manager from a CDN; the static book needs none.
    env.setdefault("TQDM_DISABLE", "1")

    command = [
        str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT),
        "--config", str(config_path),
        "--path-output", str(output),
        "--builder", "html",
        "-W", "--keep-going",
    ]
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    return output / "_build" / "html"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["ci", "cpu", "gpu", "paper"], default=None,
                        help="run-time profile (default: $MEDGAP_PROFILE, else cpu or gpu by hardware)")
    parser.add_argument("--fresh", action="store_true",
                        help="execute every chapter from a fresh kernel, ignoring the execution cache")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from medgap_utils.config import get_profile

    profile = get_profile(args.profile).name
    html = build(profile, args.fresh)
    print(f"The book is built: open {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
