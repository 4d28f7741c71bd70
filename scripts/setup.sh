#!/usr/bin/env bash
# Idempotent setup: a virtual environment in .venv with odic and its pinned dependencies.
# torch==2.14.1 / torchvision==0.29.1 come from constraints.txt (on this project's machines pip takes
# them from local files; elsewhere pip downloads them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.odic-setup-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  rm -f .venv/.odic-setup-*
  touch "$stamp"
fi
