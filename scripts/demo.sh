#!/usr/bin/env bash
# The main job on bundled images: installs what it needs, then runs `odic demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/odic demo "$@"
