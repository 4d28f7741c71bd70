"""The shipped model's training run (runs/base), resumable: re-run this script to continue.

History: steps 0-2800 used MS-SSIM alone for the human term (lr 1.5e-4); the decoded images lost
their colour, so from step ~2800 the human term adds 10 x MSE and lr is 2e-4; from step ~3550 lr 4e-4
(progress per step was the bottleneck: 128 px crops x 8 is 1/8 of the usual 256 px x 16).
"""

import sys

sys.path.insert(0, "src")
from odic.train import TrainConfig, train  # noqa: E402

train(TrainConfig(out="runs/base", steps=200000, lr=4e-4, mse_weight=10.0, threads=1, progress=False,
                  val_every=1000, log_every=50, ckpt_minutes=4, resume=True))
