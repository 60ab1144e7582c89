#!/usr/bin/env bash
# The test command: install everything, then run the whole test suite. The suite
# includes the unit tests, a build of the book in the ci profile with every
# chapter executed from a fresh kernel and warnings as errors, and checks of
# the built pages in headless Chromium. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing Chromium for the page checks"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Chromium is missing and cannot be installed here; the page checks will be skipped." >&2
    fi
fi

exec .venv/bin/python -m pytest "$@"
