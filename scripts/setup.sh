#!/usr/bin/env bash
# Create .venv when missing and install the pinned stack and medgap_utils into it.
# Re-running is cheap: the install is skipped while requirements.txt and
# pyproject.toml are unchanged since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info[:2] >= (3, 10), sys.version' \
        || { echo "Python 3.10 or newer is required (found: $("$PYTHON" --version))." >&2; exit 1; }
    echo "Creating the virtual environment .venv"
    "$PYTHON" -m venv .venv
fi

stamp=.venv/.medgap-installed
wanted=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "Installing the pinned packages (first run: about 2 minutes and 7 GB)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt
    .venv/bin/python -m pip install --quiet --no-deps -e .
    .venv/bin/python -m pip check
    echo "$wanted" > "$stamp"
fi
