#!/usr/bin/env bash
# The test suite: installs what it needs (including headless Chromium for the report test), lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -x scripts/setup-browser.sh ]; then scripts/setup-browser.sh; fi
.venv/bin/ruff check src tests scripts
exec .venv/bin/python -m pytest "$@"
