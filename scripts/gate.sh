#!/usr/bin/env bash
# The quick gates a training checkpoint passes before the full protocol (docs/training.md, "Gates").
# Usage: scripts/gate.sh CHECKPOINT NAME [REFERENCE_MODEL ...]
#   CHECKPOINT  a run's last.pt (or any weights file); exported to results/gate-NAME/NAME.pt (fp16)
#   REFERENCE   installed model names or files benched in the same folders for a paired comparison
#               (e.g. odic-base odic-people); each costs what the candidate costs.
# The grids are odic bench's presets gate-kodak (fast encoder, 11 qualities, MS-SSIM BD-rate vs the dense
# hevc-raw grid, ~2.5 min a model) and gate-refine (imagenet-sample first 40, refine 50 + views,
# EfficientNet-Lite0, ~17 min a model); `odic bench --help` lists them. Resumable (odic bench caches).
# Data: $ODIC_DATA, else ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/gate.sh CHECKPOINT NAME [REFERENCE_MODEL ...]" >&2; exit 2; }
CKPT=$1; NAME=$2; shift 2
ODIC=.venv/bin/odic
OUT=results/gate-$NAME
mkdir -p "$OUT"
[ -f "$OUT/$NAME.pt" ] || $ODIC export "$CKPT" -o "$OUT/$NAME.pt" --model-id "odic-$NAME"
MODELS=(--model "$OUT/$NAME.pt")
for M in "$@"; do MODELS+=(--model "$M"); done
for GATE in kodak refine; do
  $ODIC bench --preset "gate-$GATE" "${MODELS[@]}" --threads 2 --quiet --no-plots --out "$OUT/$GATE"
  $ODIC report "$OUT/$GATE" --tables
done
