"""Checkerboard context (He et al., CVPR 2021): half of y is coded first and informs the other half.

The latent's positions are split like a checkerboard. *Anchors* ((row + col) even) are coded with
the hyperprior's (scales, means) alone. The other half is coded next, with (scales, means) refined
from the hyperprior's and from the decoded anchors around it (a 5x5 convolution of the anchors, the
other half zeroed). Two passes instead of one per position (a serial autoregressive context), so decoding
stays fast, and the non-anchors cost fewer bits because their neighbours are known.

Like the hyper-synthesis, the refinement runs in exact integer arithmetic when coding
(:func:`odic.entropy.fixed_matmul`), so encoder and decoder agree on every index on any machine.
The float path (``forward``) is what training uses. The refinement is a residual on the
hyperprior's parameters, and its last layer starts at zero, so a new context starts out coding
exactly like the hyperprior alone and training can only take bits away from there.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..entropy import fixed_matmul, fixed_weights

KERNEL = 5


def anchor_mask(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """(1, 1, H, W) bool: True at the anchors, the positions coded first."""
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    return ((rows + cols) % 2 == 0).view(1, 1, height, width)


class CheckerboardContext(nn.Module):
    """(anchors of y^, hyperprior scales, means) -> refined (scales, means), used at non-anchors."""

    def __init__(self, M: int):
        super().__init__()
        self.context = nn.Conv2d(M, M, KERNEL, padding=KERNEL // 2)
        widths = (3 * M, 2 * M, 2 * M, 2 * M)  # (context, scales, means) in, (d_scales, d_means) out
        self.layers = nn.ModuleList([nn.Conv2d(a, b, 1) for a, b in pairwise(widths)])
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, anchors: Tensor, scales: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
        """Float path. ``anchors``: y^ at the anchors and zero elsewhere, so that the non-anchors'
        parameters depend on the anchors only (what the decoder knows when it needs them)."""
        x = self.context(anchors)
        x = torch.cat([x, scales, means], dim=1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        d_scales, d_means = x.chunk(2, dim=1)
        return scales + d_scales, means + d_means

    @torch.no_grad()
    def forward_fixed(self, anchors_fixed: Tensor, scales_fixed: Tensor, means_fixed: Tensor) -> tuple[Tensor, Tensor]:
        """Exact path on integers at ``ACT_FRAC_BITS`` (float64, CPU): :meth:`forward`'s numbers at the
        non-anchors (the anchors keep h_s's), computed there only and from the anchor taps only, as
        matrix products: a quarter of the dense convolution's work."""
        height, width = anchors_fixed.shape[-2:]
        rest = ~anchor_mask(height, width)[0, 0]
        taps = [(dy, dx) for dy in range(KERNEL) for dx in range(KERNEL) if (dy + dx) % 2 == 1]
        w, b = fixed_weights(self.context)
        context_weight = torch.cat([w[:, :, dy, dx] for dy, dx in taps], dim=1)
        layers = [fixed_weights(layer) for layer in self.layers]
        padded = F.pad(anchors_fixed.double(), [KERNEL // 2] * 4)
        scales_out, means_out = scales_fixed.clone(), means_fixed.clone()
        for i in range(anchors_fixed.shape[0]):
            columns = torch.cat([padded[i, :, dy:dy + height, dx:dx + width][:, rest] for dy, dx in taps])
            x = fixed_matmul(context_weight, b, columns, relu=False)
            x = torch.cat([x, scales_fixed[i][:, rest], means_fixed[i][:, rest]])
            for n, (w, b_n) in enumerate(layers):
                x = fixed_matmul(w[:, :, 0, 0], b_n, x, relu=n < len(layers) - 1)
            d_scales, d_means = x.chunk(2)
            scales_out[i][:, rest] += d_scales
            means_out[i][:, rest] += d_means
        return scales_out, means_out
