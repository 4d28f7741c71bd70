"""Training: data, the loop (single process or torchrun/DDP), checkpoints and export."""

from .loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
