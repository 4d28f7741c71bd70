#!/usr/bin/env bash
# Ship a training checkpoint as the bundled model and measure it the way docs/results.md reports.
# Usage: scripts/release.sh RUN_DIR/last.pt MODEL_ID META_JSON [IMAGENET_LIMIT]
#   e.g. scripts/release.sh runs/v4/last.pt odic-base-s27000 '{"command": "...", "wall_time": "..."}'
#   SAME_DECODER_AS=old.pt scripts/release.sh ...   (encoder-only runs: the old model's streams stay decodable)
# Steps: keep the previous default as src/odic/weights/<its model id>.pt (unless SAME_DECODER_AS: then
# the new file decodes its streams itself), export fp16 weights over src/odic/weights/odic-base.pt (odic export refuses an id whose
# -sSTEPS disagrees with META's "steps"), regenerate the golden vectors, evaluate (eval_release.sh),
# time encode/decode, check determinism. Writes results/release-*.log.
# Commit the new weights normally afterwards (replace the file; never rewrite history).
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=$1
MODEL_ID=$2
META=$3
LIMIT=${4:-100}
mkdir -p results
# After encoder-only training, SAME_DECODER_AS=OLD_WEIGHTS keeps OLD's streams decodable (checked).
EXTRA=()
if [ -n "${SAME_DECODER_AS:-}" ]; then
  EXTRA=(--same-decoder-as "$SAME_DECODER_AS")
else
  # A new decoder: the old default ships on under its model id, so the files written with it keep
  # decoding (decoding finds an installed model by the stream's id; tests/golden/models/<id>/ keeps
  # its vectors, moved there by make_golden.py). Same blob as before, so the repository does not grow.
  OLD_ID=$(.venv/bin/python -c 'from odic import weights; print(weights.read_weights_file(weights.resolve(weights.DEFAULT_MODEL))["model_id"])')
  [ -e "src/odic/weights/$OLD_ID.pt" ] || cp src/odic/weights/odic-base.pt "src/odic/weights/$OLD_ID.pt"
  echo "kept the previous default as src/odic/weights/$OLD_ID.pt (add a line for it to MODEL_SUMMARIES)"
fi
.venv/bin/odic export "$CKPT" -o src/odic/weights/odic-base.pt --model-id "$MODEL_ID" --force --meta "$META" \
  "${EXTRA[@]}"
.venv/bin/python scripts/make_golden.py
start=$(date +%s)
scripts/eval_release.sh "$LIMIT" 2 2>&1 | tee results/release-eval.log
echo "eval_release: $(( $(date +%s) - start )) s" | tee -a results/release-eval.log
.venv/bin/python scripts/measure_speed.py --limit 24 --threads 2 --out results/speed.json 2>&1 | tee results/release-speed.log
.venv/bin/python scripts/determinism_check.py --kodak 24 --imagenet 50 2>&1 | tee results/release-determinism.log
