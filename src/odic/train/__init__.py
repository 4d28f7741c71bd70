"""Training: data, the loop (single process or torchrun/DDP), checkpoints and export."""

from .context import train_context
from .loop import TrainConfig, train

__all__ = ["TrainConfig", "train", "train_context"]
