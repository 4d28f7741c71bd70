"""The learned transforms and the conditional codec model."""

from .codec import ModelConfig, OdicModel, lmbda_for
from .context import round_ste

__all__ = ["ModelConfig", "OdicModel", "lmbda_for", "round_ste"]
