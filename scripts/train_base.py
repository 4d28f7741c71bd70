import sys
sys.path.insert(0, 'src')
from odic.train import TrainConfig, train
train(TrainConfig(out='runs/base', steps=200000, lr=1.5e-4, threads=1, progress=False,
                  val_every=1000, log_every=50, ckpt_minutes=4, resume=True))
