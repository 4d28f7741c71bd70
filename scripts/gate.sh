#!/usr/bin/env bash
# The quick gates a training checkpoint passes before the full protocol (docs/training.md, "Gates").
# Usage: scripts/gate.sh CHECKPOINT NAME [REFERENCE_MODEL ...]
#   CHECKPOINT  a run's last.pt (or any weights file); exported to results/gate-NAME/NAME.pt (fp16)
#   REFERENCE   installed model names or files benched in the same folders for a paired comparison
#               (e.g. odic-base odic-people); each costs what the candidate costs.
# Kodak fast encoder (11 qualities, MS-SSIM BD-rate vs hevc-raw, ~2.5 min a model) and imagenet-sample
# first 40, refine 50 + views, EfficientNet-Lite0 (~17 min a model). Resumable (odic bench caches).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/gate.sh CHECKPOINT NAME [REFERENCE_MODEL ...]" >&2; exit 2; }
CKPT=$1; NAME=$2; shift 2
source scripts/protocol.sh
OUT=results/gate-$NAME
mkdir -p "$OUT"
[ -f "$OUT/$NAME.pt" ] || $ODIC export "$CKPT" -o "$OUT/$NAME.pt" --model-id "odic-$NAME"
KODAK="" REFINE=""
for M in "$OUT/$NAME.pt" "$@"; do
  KODAK+="odic:alpha=0:$KODAK_FAST_Q:model=$M,"
  REFINE+="odic:alpha=1:q=2/25/55:$REFINE_MACHINE:model=$M,"
done
$ODIC bench --data kodak="$DATA/kodak" --threads 2 --quiet --no-plots --out "$OUT/kodak" \
  --codecs "$KODAK$HEVC_DENSE"
.venv/bin/python scripts/results_tables.py "$OUT/kodak/summary.json"
$ODIC bench --data imagenet="$DATA/imagenet-sample" --classifiers efficientnet_lite0 --limit 40 --threads 2 \
  --quiet --no-plots --out "$OUT/refine" --codecs "${REFINE}hevc-raw"
.venv/bin/python scripts/results_tables.py "$OUT/refine/summary.json"
