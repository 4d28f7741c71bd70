#!/usr/bin/env bash
# Evaluate the bundled model the way docs/results.md reports it (issue 5). Resumable (odic bench caches).
# Usage: scripts/eval_release.sh [IMAGENET_LIMIT] [THREADS]   (defaults 100 and 2; the full sample is 1000)
# Classical anchors run on the same images in the same summaries (hevc-raw is the BD-rate reference).
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${1:-100}
THREADS=${2:-2}
DATA=${ODIC_DATA:-../shared/data}
ODIC=.venv/bin/odic
Q=q=2/25/55/90
A="odic:alpha=0:$Q,odic:alpha=0.25:$Q,odic:alpha=0.5:$Q,odic:alpha=0.75:$Q,odic:alpha=1:$Q"
CLASSICAL=hevc-raw,webp  # the BD-rate reference and the issue's best classical codec at 0.25 bpp
# Kodak, human metrics: every observer setting (the frontier's x axis) beside the classical codecs.
$ODIC bench --data kodak="$DATA/kodak" --codecs "$A,$CLASSICAL" --threads "$THREADS" \
  --out results/odic-kodak -q
# imagenet-sample: every observer setting with EfficientNet-Lite0 (the training observer) ...
$ODIC bench --data imagenet="$DATA/imagenet-sample" --codecs "$A,$CLASSICAL" --classifiers efficientnet_lite0 \
  --limit "$LIMIT" --threads "$THREADS" --out results/odic-imagenet -q
# ... and the machine observer under the two classifiers never used in training.
$ODIC bench --data imagenet="$DATA/imagenet-sample" --codecs "odic:alpha=1:$Q,hevc-raw" \
  --classifiers efficientnet_lite1,efficientnet_lite2 --limit "$LIMIT" --threads "$THREADS" \
  --out results/odic-imagenet-unseen -q
mkdir -p docs/results
.venv/bin/python scripts/frontier.py results/odic-kodak/summary.json results/odic-imagenet/summary.json \
  --human kodak --labelled imagenet --bpp 0.25 --classifier efficientnet_lite0 -o docs/results/frontier
.venv/bin/python scripts/plot_anchors.py results/odic-kodak/summary.json -o docs/results/kodak-anchors
