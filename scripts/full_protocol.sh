#!/usr/bin/env bash
# The full protocol a candidate passes before it replaces the default (issue 5; docs/results.md).
# Usage: scripts/full_protocol.sh MODEL NAME     (MODEL: a weights file or installed model name)
# Writes results/NAME-kodak-dense, results/NAME-lite0, results/NAME-unseen. Resumable (odic bench caches):
# rerun the same line after an interruption. Cost on 2 cores: Kodak about 50-60 min, Lite0 100 images
# about 30 min, Lite1 + Lite2 100 images about 45-90 min.
# The grids are odic bench's presets full-kodak-dense (people: Kodak, whole images, settings close to every
# target for both codecs), full-lite0 (the training observer, refined encoder with views, first 100 images)
# and full-unseen (the classifiers never used in training); `odic bench --help` lists them.
# Data: $ODIC_DATA, else ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/full_protocol.sh MODEL NAME" >&2; exit 2; }
MODEL=$1; NAME=$2
ODIC=.venv/bin/odic
for STAGE in kodak-dense lite0 unseen; do
  $ODIC bench --preset "full-$STAGE" --model "$MODEL" --threads 2 --quiet --no-plots --out "results/$NAME-$STAGE"
done
$ODIC report "results/$NAME-kodak-dense" "results/$NAME-lite0" "results/$NAME-unseen" --tables
