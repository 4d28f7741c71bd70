#!/usr/bin/env bash
# Evaluate the bundled model the way docs/results.md reports it (issue 5). Resumable (odic bench caches).
# Usage: scripts/eval_release.sh [IMAGENET_LIMIT] [THREADS]   (defaults 50 and 2; the full sample is 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${1:-50}
THREADS=${2:-2}
DATA=${ODIC_DATA:-../shared/data}
ODIC=.venv/bin/odic
Q=q=2/25/55/90
A="odic:alpha=0:$Q,odic:alpha=0.25:$Q,odic:alpha=0.5:$Q,odic:alpha=0.75:$Q,odic:alpha=1:$Q"
# Kodak, human metrics: the pure observers (add $A for every observer setting).
$ODIC bench --data kodak=$DATA/kodak --codecs "odic:alpha=0:$Q,odic:alpha=1:$Q" --threads "$THREADS" \
  --out results/odic-kodak -q
# imagenet-sample: every observer setting with EfficientNet-Lite0 (the training observer) ...
$ODIC bench --data imagenet=$DATA/imagenet-sample --codecs "$A" --classifiers efficientnet_lite0 \
  --limit "$LIMIT" --threads "$THREADS" --out results/odic-imagenet -q
# ... and the machine observer under the two classifiers never used in training.
$ODIC bench --data imagenet=$DATA/imagenet-sample --codecs "odic:alpha=1:$Q" \
  --classifiers efficientnet_lite1,efficientnet_lite2 --limit "$LIMIT" --threads "$THREADS" \
  --out results/odic-imagenet-unseen -q
mkdir -p docs/results
.venv/bin/python scripts/frontier.py results/odic-imagenet/summary.json results/classical/summary.json \
  --human imagenet --bpp 0.25 --classifier efficientnet_lite0 -o docs/results/frontier
