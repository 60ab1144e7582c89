#!/usr/bin/env bash
# The main command: install everything, then build the book with every chapter
# executed on the embedded data. Extra arguments go to scripts/build_book.py
# (for example --profile ci or --fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/build_book.py "$@"
