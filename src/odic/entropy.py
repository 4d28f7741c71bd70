"""Deterministic entropy parameters: the hyper-synthesis evaluated in exact integer arithmetic.

Why: a learned codec picks, for every latent, which probability table the range coder uses
(the "scale index") from the output of a neural network. If the decoder's network rounds one
float differently from the encoder's (another thread count, CPU or GPU), one index differs and
every symbol after it decodes to garbage. Here the hyper-synthesis ``h_s`` runs on integers:

* the decoded hyper-latent is turned into fixed point with ``ACT_FRAC_BITS`` fractional bits;
* weights are rounded to ``WEIGHT_FRAC_BITS`` fractional bits, biases to the accumulator's scale;
* each layer is a convolution of integer-valued float64 tensors on the CPU. Every product and
  partial sum is an integer below 2**53, so the result is exact whatever the summation order,
  thread count or BLAS; rescaling is a floor division by a power of two, also exact;
* the scale index compares integer scales against integer thresholds, and the means are
  integers divided by a power of two.

The float path (``HyperSynthesis.forward``) is what training uses; the integer path differs from it
only by the weight rounding (~1e-4 relative), which costs nothing measurable in rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .derived import derived

ACT_FRAC_BITS = 10
WEIGHT_FRAC_BITS = 14
ACT_LIMIT = float(1 << 24)  # |activation| bound, keeps every accumulator below 2**53
WEIGHT_LIMIT = float(1 << 16)


def _deconv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class HyperSynthesis(nn.Module):
    """h_s: hyper-latent -> (scales, means) of the Gaussian conditional, ReLU only (exact in ints)."""

    def __init__(self, N: int, M: int):
        super().__init__()
        self.M = M
        self.layers = nn.ModuleList(
            [_deconv(N, M), _deconv(M, M * 3 // 2), nn.Conv2d(M * 3 // 2, M * 2, 3, padding=1)]
        )

    def forward(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        x = z_hat
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        scales, means = x.chunk(2, dim=1)
        return scales, means

    @torch.no_grad()
    def forward_fixed(self, z_hat_fixed: Tensor) -> tuple[Tensor, Tensor]:
        """Exact path: ``z_hat_fixed`` holds integers (float64, CPU) at ``ACT_FRAC_BITS``.

        Returns integer scales and means (float64 tensors holding integers) at ``ACT_FRAC_BITS``.
        """
        x = z_hat_fixed.double().cpu()
        for i, layer in enumerate(self.layers):
            x = fixed_layer(layer, x, relu=i < len(self.layers) - 1)
        scales, means = x.chunk(2, dim=1)
        return scales, means


def fixed_weights(layer: nn.Conv2d | nn.ConvTranspose2d) -> tuple[Tensor, Tensor]:
    """A layer's (weight, bias) as integers (float64, CPU): the weight at ``WEIGHT_FRAC_BITS``, the bias
    at the accumulator's scale (``WEIGHT_FRAC_BITS + ACT_FRAC_BITS``). Built once per parameter version."""

    def build() -> tuple[Tensor, Tensor]:
        w = torch.round(layer.weight.detach().double().cpu() * float(1 << WEIGHT_FRAC_BITS))
        b = torch.round(layer.bias.detach().double().cpu() * float(1 << (WEIGHT_FRAC_BITS + ACT_FRAC_BITS)))
        return w.clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT), b

    return derived(layer, "fixed_weights", (layer.weight, layer.bias), build)


def rescale(acc: Tensor, relu: bool) -> Tensor:
    """An exact accumulator back to ``ACT_FRAC_BITS`` (floor division by a power of two), ReLU first."""
    if relu:
        acc = acc.clamp_min(0)
    return torch.floor(acc / float(1 << WEIGHT_FRAC_BITS)).clamp(-ACT_LIMIT, ACT_LIMIT)


def fixed_layer(layer: nn.Conv2d | nn.ConvTranspose2d, x: Tensor, relu: bool) -> Tensor:
    """One convolution (and ReLU) on integers at ``ACT_FRAC_BITS``: exact, see the module docstring."""
    x = x.clamp(-ACT_LIMIT, ACT_LIMIT)
    w, b = fixed_weights(layer)
    if isinstance(layer, nn.ConvTranspose2d):
        acc = F.conv_transpose2d(x, w, None, layer.stride, layer.padding, layer.output_padding)
    else:
        acc = F.conv2d(x, w, None, layer.stride, layer.padding)
    return rescale(acc + b.view(1, -1, 1, 1), relu)


def fixed_matmul(weight: Tensor, bias: Tensor, columns: Tensor, relu: bool) -> Tensor:
    """``fixed_layer`` of a convolution given as a matrix (Cout, Cin * taps) over gathered input
    columns (Cin * taps, P): the same integers, computed only at the P positions that need them."""
    return rescale(weight @ columns.clamp(-ACT_LIMIT, ACT_LIMIT) + bias[:, None], relu)


def to_fixed(x: Tensor) -> Tensor:
    """Float tensor -> integer-valued float64 at ``ACT_FRAC_BITS`` (exact for float32 inputs)."""
    return torch.round(x.detach().double().cpu() * float(1 << ACT_FRAC_BITS))


def from_fixed(x: Tensor) -> Tensor:
    return (x / float(1 << ACT_FRAC_BITS)).float()


def scale_indexes_fixed(scales_fixed: Tensor, scale_table: Tensor) -> Tensor:
    """CompressAI's ``build_indexes`` on integers: the same index for the same integer scale.

    CompressAI counts table entries ``s`` (all but the last) with ``scale <= s``; with integer
    scales that is ``scale_int <= floor(s * 2**ACT_FRAC_BITS)``. The lower bound on the scale only
    ever raises small scales to the first entry, which gives the same index.
    """
    thresholds = torch.floor(scale_table.detach().double().cpu() * float(1 << ACT_FRAC_BITS))[:-1]
    # index = (L - 1) - #{t : s <= t} = #{t : t < s}: a binary search on exact integers.
    return torch.searchsorted(thresholds.contiguous(), scales_fixed.contiguous(), right=False).int()
