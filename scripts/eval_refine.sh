#!/usr/bin/env bash
# Measure encoder refinement (odic.refine) against the fast encoder and HEVC, as docs/results.md reports.
# Usage: scripts/eval_refine.sh [STEPS] [IMAGENET_LIMIT] [UNSEEN_LIMIT]   (defaults 20, 100, 50)
# Resumable (odic bench caches). Refined encodes cost ~2.5 s per 256 px crop and ~13 s per Kodak
# image at 20 steps on 2 cores, so the unseen classifiers (two more crop sizes) get fewer images.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
LIMIT=${2:-100}
UNSEEN=${3:-50}
DATA=${ODIC_DATA:-../shared/data}
ODIC=.venv/bin/odic
Q=q=2/25/55/90
R=refine=$STEPS
# The two classifiers never used in training nor in refinement (refinement still scores with Lite0).
$ODIC bench --data imagenet="$DATA/imagenet-sample" --codecs "odic:alpha=1:q=2/25/55:$R,odic:alpha=1:q=2/25/55,hevc-raw" \
  --classifiers efficientnet_lite1,efficientnet_lite2 --limit "$UNSEEN" --threads 2 --out results/refine-imagenet-unseen -q
# Machine observer, EfficientNet-Lite0 (the training observer, and the classifier refinement uses).
$ODIC bench --data imagenet="$DATA/imagenet-sample" --codecs "odic:alpha=1:$Q:$R,odic:alpha=1:$Q,hevc-raw,webp" \
  --classifiers efficientnet_lite0 --limit "$LIMIT" --threads 2 --out results/refine-imagenet -q
# Human observer on Kodak, whole images.
$ODIC bench --data kodak="$DATA/kodak" --codecs "odic:alpha=0:$Q:$R,odic:alpha=0:$Q,hevc-raw,webp" \
  --threads 2 --out results/refine-kodak -q
