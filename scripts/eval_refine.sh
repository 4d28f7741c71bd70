#!/usr/bin/env bash
# Measure encoder refinement (odic.refine) against the fast encoder and HEVC, as docs/results.md reports.
# Usage: scripts/eval_refine.sh [STEPS] [IMAGENET_LIMIT] [UNSEEN_LIMIT]   (defaults 20, 100, 50)
# Resumable (odic bench caches). Refined encodes cost ~2.5 s per 256 px crop and ~13 s per Kodak
# image at 20 steps on 2 cores, so the unseen classifiers (two more crop sizes) get fewer images.
# The grids are odic bench's presets refine-imagenet-unseen (the two classifiers never used in training nor
# in refinement, which still scores with Lite0), refine-imagenet (EfficientNet-Lite0, the training observer
# and the classifier refinement uses) and refine-kodak (human observer, whole images).
# Data: $ODIC_DATA, else ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
LIMIT=${2:-100}
UNSEEN=${3:-50}
ODIC=.venv/bin/odic
$ODIC bench --preset refine-imagenet-unseen --refine "$STEPS" --limit "$UNSEEN" --threads 2 \
  --out results/refine-imagenet-unseen -q
$ODIC bench --preset refine-imagenet --refine "$STEPS" --limit "$LIMIT" --threads 2 --out results/refine-imagenet -q
$ODIC bench --preset refine-kodak --refine "$STEPS" --threads 2 --out results/refine-kodak -q
