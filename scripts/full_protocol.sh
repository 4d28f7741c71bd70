#!/usr/bin/env bash
# The full protocol a candidate passes before it replaces the default (issue 5; docs/results.md).
# Usage: scripts/full_protocol.sh MODEL NAME     (MODEL: a weights file or installed model name)
# Writes results/NAME-kodak-dense, results/NAME-lite0, results/NAME-unseen. Resumable (odic bench caches):
# rerun the same line after an interruption. Cost on 2 cores: Kodak about 50-60 min, Lite0 100 images
# about 30 min, Lite1 + Lite2 100 images about 45-90 min.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/full_protocol.sh MODEL NAME" >&2; exit 2; }
MODEL=$1; NAME=$2
source scripts/protocol.sh
R="$REFINE_MACHINE:model=$MODEL"
# People: Kodak, whole images, settings close to every target for both codecs ("A denser grid").
$ODIC bench --data kodak="$DATA/kodak" --threads 2 --quiet --no-plots --out "results/$NAME-kodak-dense" --codecs \
  "odic:alpha=0:q=2/14/25/32/55/65/90:refine=20:model=$MODEL,odic:alpha=0:$KODAK_FAST_Q:model=$MODEL,$HEVC_DENSE"
# The training observer, EfficientNet-Lite0, refined encoder with views, first 100 images.
$ODIC bench --data imagenet="$DATA/imagenet-sample" --classifiers efficientnet_lite0 --limit 100 --threads 2 \
  --quiet --no-plots --out "results/$NAME-lite0" --codecs "odic:alpha=1:q=2/25/55:$R,odic:alpha=1:q=2/25/55:model=$MODEL,hevc-raw"
# The classifiers never used in training (refinement still scores with Lite0); quality 40 sits near 0.25 bpp.
$ODIC bench --data imagenet="$DATA/imagenet-sample" --classifiers efficientnet_lite1,efficientnet_lite2 --limit 100 \
  --threads 2 --quiet --no-plots --out "results/$NAME-unseen" --codecs "odic:alpha=1:q=25/40/55:$R,hevc-raw"
for S in kodak-dense lite0 unseen; do .venv/bin/python scripts/results_tables.py "results/$NAME-$S/summary.json"; done
