"""Conditioning on (quality, observer): gain tables for the latents and FiLM for the transforms.

A condition is a pair ``(q, alpha)`` with ``q`` in [0, 1] (internal quality: 0 = smallest files)
and ``alpha`` in [0, 1] (0 = human observer, 1 = machine observer).

* :class:`GainTable` holds learned channel-wise gains on a grid of ``levels`` rates x 2 observers
  and interpolates bilinearly in between (gain units, Cui et al., CVPR 2021). Rate is continuous
  because the grid is.
* :class:`FiLM` scales and shifts feature maps with values predicted from the condition embedding,
  so the transforms themselves can change what they keep for each observer.
* :class:`LatentBlock` is a conditioned residual block on the latent: extra encoder capacity that
  starts as the identity, so it can be added to a trained encoder and trained alone (the decoder,
  hence every stream, unchanged).

The integer variant of the interpolation (:meth:`GainTable.interpolate_fixed`) is exact and is
what the entropy-parameter path uses, so the decoder reproduces the encoder's numbers bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bitstream import ALPHA_CODE_MAX, QUALITY_CODE_MAX

GAIN_FRAC_BITS = 16
#: Smallest gain: a channel whose gain is clamped here is switched off at that rate.
GAIN_FLOOR = 1e-3


class GainTable(nn.Module):
    """Learned positive channel gains on a (levels x 2 observers) grid."""

    def __init__(self, levels: int, channels: int, init: Tensor | float = 1.0):
        super().__init__()
        init_t = torch.as_tensor(init, dtype=torch.float32)
        self.levels = levels
        self.gains = nn.Parameter(init_t.expand(levels, 2, channels).clone().contiguous())

    def positive(self) -> Tensor:
        return self.gains.clamp_min(GAIN_FLOOR)

    def forward(self, q: Tensor, alpha: Tensor) -> Tensor:
        """Float interpolation for training: ``q`` and ``alpha`` of shape (B,) -> gains (B, C, 1, 1)."""
        table = self.positive()
        pos = q.clamp(0, 1) * (self.levels - 1)
        idx = pos.floor().long().clamp(0, self.levels - 2)
        t = (pos - idx.to(pos.dtype)).view(-1, 1, 1)
        row = table[idx] * (1 - t) + table[idx + 1] * t  # (B, 2, C)
        a = alpha.clamp(0, 1).view(-1, 1)
        g = row[:, 0] * (1 - a) + row[:, 1] * a
        return g[:, :, None, None]

    def interpolate_fixed(self, quality_code: int, alpha_code: int) -> Tensor:
        """Exact integer interpolation: gains as int64 with ``GAIN_FRAC_BITS`` fractional bits.

        Only exact operations touch the parameters (scaling by a power of two and rounding), so
        every machine computes the same integers from the same weights.
        """
        table = torch.round(self.positive().detach().double().cpu() * (1 << GAIN_FRAC_BITS)).long()
        num = quality_code * (self.levels - 1)
        idx = min(num // QUALITY_CODE_MAX, self.levels - 2)
        rem = num - idx * QUALITY_CODE_MAX
        row = table[idx] * (QUALITY_CODE_MAX - rem) + table[idx + 1] * rem  # (2, C)
        mixed = row[0] * (ALPHA_CODE_MAX - alpha_code) + row[1] * alpha_code
        return torch.div(mixed, QUALITY_CODE_MAX * ALPHA_CODE_MAX, rounding_mode="floor")


class ConditionEmbedding(nn.Module):
    """Maps (q, alpha) to a small vector shared by every FiLM layer."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(2, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, q: Tensor, alpha: Tensor) -> Tensor:
        return self.net(torch.stack([q, alpha], dim=1))


class Conditioned(nn.Module):
    """A layer of a :class:`ConditionalSequential` that reads the condition embedding: ``forward(x, cond)``."""


class FiLM(Conditioned):
    """Feature-wise affine modulation; starts as the identity."""

    def __init__(self, channels: int, cond_dim: int = 64):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.proj(cond)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + gamma) + beta


class LatentBlock(Conditioned):
    """``x + conv(FiLM(LeakyReLU(conv(x)), cond))`` with 3x3 convolutions: a residual correction of
    the latent that depends on (quality, observer), as encoder refinement's per-image edits do.
    The last convolution starts at zero, so a new block is the identity."""

    def __init__(self, channels: int, cond_dim: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = FiLM(channels, cond_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        return x + self.conv2(self.film(F.leaky_relu(self.conv1(x)), cond))


class ConditionalSequential(nn.Module):
    """Runs layers in order, passing the condition embedding to the :class:`Conditioned` ones only."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, cond) if isinstance(layer, Conditioned) else layer(x)
        return x
