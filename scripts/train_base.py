"""The shipped model's training run, resumable: re-run this script to continue (runs/v7).

The MSE-weight-2 fine-tune (runs/v8) runs from the CLI instead; docs/training.md has its command.

History (docs/training.md has the numbers):
* runs/v3 (fresh start, 2-core CPU): N=96/M=160, 8 crops of 128 px, lr 5e-4, lambda(q) = 0.5 * 320^q
  (the lowest quality reaches ~0.1 bpp). Steps 0-4000 human observer only (1 - MS-SSIM + 10 MSE),
  then alpha drawn per image from [0, 1] with EfficientNet-Lite0; lr x0.1 at step 10647; shipped
  at step 15169 as odic-base-s15169.
* runs/v4: continues from odic-base-s15169 with a fresh optimizer at lr 3e-4 (the
  dropped lr had stopped paying off less than the high-lr phase still would), same data, losses
  and lambda. The run is limited by wall time, not steps, so the lr is stepped down by hand: stop
  it (SIGTERM checkpoints first) and resume with ``ODIC_LR=...`` (the lr from then on), or set
  ``ODIC_LR_DROP_STEP`` (x0.1 from that step, counted from this run's step 0). Shipped at
  24576 steps in all as odic-base-s24576.
* runs/v5: continues from odic-base-s24576 with a fresh optimizer on 192 px crops,
  6 per batch (the training photos are 256 px; 128 px crops only allowed MS-SSIM a 7 px window,
  while Kodak is scored with the standard 11 px one, and the classifier saw small objects).
  lr 1e-4, x0.3 from step 3000. Shipped as odic-base-s29033 (30033 steps in all; the id undercounts by 1000).
* runs/v6: continues from odic-base-s29033 with a fresh optimizer, same crops,
  losses and lambda, lr 3e-5, x0.3 from step 2500 (override with ``ODIC_LR`` /
  ``ODIC_LR_DROP_STEP``). The v5 run went on to ~8350 steps but its folder was lost with the
  machine, so v6 restarts from the last committed weights. It plateaued (+0.001 MS-SSIM in 3000
  steps) and was lost with the machine again.
* runs/v7 (this script): continues from odic-base-s29033 with a fresh optimizer on whole 256 px
  photos (the largest crop the training set allows: MS-SSIM's five scales see what Kodak's
  scoring sees, the classifier sees whole objects, and the borders are the photos' own),
  6 per batch, lr 5e-5, x0.3 from step 3000 (override with ``ODIC_LR`` / ``ODIC_LR_DROP_STEP``).
"""

import os
import sys

sys.path.insert(0, "src")
from odic.train import TrainConfig, train  # noqa: E402

drop = os.environ.get("ODIC_LR_DROP_STEP", "3000")
train(TrainConfig(out="runs/v7", init="src/odic/weights/odic-base-s29033.pt", steps=200000,
                  lr=float(os.environ.get("ODIC_LR", "5e-5")), lr_drop=0.3, crop=256, batch=6,
                  mse_weight=10.0, threads=2, progress=False, lambda_min=0.5, lambda_max=160.0,
                  lr_drop_step=int(drop) if drop else None,
                  val_every=1000, log_every=50, ckpt_minutes=4, resume=True))
