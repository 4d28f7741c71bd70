"""The shipped model's training run (runs/v3), resumable: re-run this script to continue.

Recipe (fresh start, 2-core CPU): N=96/M=160, 8 crops of 128 px, lr 5e-4, lambda(q) = 0.5 * 320^q
(the lowest quality reaches ~0.1 bpp). Steps 0-4000 train the human observer only (1 - MS-SSIM
+ 10 MSE: colour and structure first); from then on alpha is drawn per image from [0, 1] with
EfficientNet-Lite0 as the machine observer. The lr drops x0.1 at ``ODIC_LR_DROP_STEP`` (set it on
the last resume; the run is limited by wall time, not steps).
"""

import os
import sys

sys.path.insert(0, "src")
from odic.train import TrainConfig, train  # noqa: E402

drop = os.environ.get("ODIC_LR_DROP_STEP")
train(TrainConfig(out="runs/v3", steps=200000, lr=5e-4, mse_weight=10.0, threads=2, progress=False,
                  lambda_min=0.5, lambda_max=160.0, human_steps=4000,
                  lr_drop_step=int(drop) if drop else None,
                  val_every=1000, log_every=50, ckpt_minutes=4, resume=True))
