#!/usr/bin/env bash
# Evaluate the bundled model the way docs/results.md reports it (issue 5). Resumable (odic bench caches).
# Usage: scripts/eval_release.sh [IMAGENET_LIMIT]   (default 50; the full sample is 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${1:-50}
DATA=${ODIC_DATA:-../shared/data}
ODIC=.venv/bin/odic
Q=q=2/25/55/90
# Kodak (human metrics) and imagenet-sample for the pure observers, three classifiers.
$ODIC bench --data kodak=$DATA/kodak --data imagenet=$DATA/imagenet-sample \
  --codecs odic:alpha=0:$Q,odic:alpha=0.5:$Q,odic:alpha=1:$Q \
  --classifiers efficientnet_lite0,efficientnet_lite1,efficientnet_lite2 \
  --limit "$LIMIT" --threads 1 --out results/odic -q
# The mixed observers for the trade-off frontier (EfficientNet-Lite0 only).
$ODIC bench --data kodak=$DATA/kodak --data imagenet=$DATA/imagenet-sample \
  --codecs odic:alpha=0.25:$Q,odic:alpha=0.75:$Q \
  --classifiers efficientnet_lite0 --limit "$LIMIT" --threads 1 --out results/odic-mix -q
.venv/bin/python scripts/frontier.py results/odic/summary.json results/odic-mix/summary.json \
  results/classical/summary.json --bpp 0.25 --classifier efficientnet_lite0 -o docs/results/frontier
