#!/usr/bin/env bash
# Evaluate the bundled model the way docs/results.md reports it (issue 5). Resumable (odic bench caches).
# Usage: scripts/eval_release.sh [IMAGENET_LIMIT] [THREADS]   (defaults 100 and 2; the full sample is 1000)
# The grids are odic bench's presets release-kodak (every observer setting, the frontier's x axis, beside
# hevc-raw, the BD-rate reference, and webp, the issue's best classical codec at 0.25 bpp),
# release-imagenet (the same with EfficientNet-Lite0, the training observer) and release-imagenet-unseen
# (the machine observer under the two classifiers never used in training). Data: $ODIC_DATA, else ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${1:-100}
THREADS=${2:-2}
ODIC=.venv/bin/odic
$ODIC bench --preset release-kodak --threads "$THREADS" --out results/odic-kodak -q
$ODIC bench --preset release-imagenet --limit "$LIMIT" --threads "$THREADS" --out results/odic-imagenet -q
$ODIC bench --preset release-imagenet-unseen --limit "$LIMIT" --threads "$THREADS" \
  --out results/odic-imagenet-unseen -q
mkdir -p docs/results
$ODIC report results/odic-kodak results/odic-imagenet --frontier -f -o docs/results/frontier \
  --human kodak --labelled imagenet --bpp 0.25 --classifier efficientnet_lite0
.venv/bin/python scripts/plot_anchors.py results/odic-kodak/summary.json -o docs/results/kodak-anchors
