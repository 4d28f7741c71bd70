"""Inference-only form of the conditional transforms (g_a, g_s): the same function with less
memory traffic.

GDN and FiLM run in place on the buffer the convolution just produced: at decode sizes (a 50 MB
feature map at 768x512) allocating a fresh tensor, and page-faulting it in, costs five times
the arithmetic of an element-wise op, and the in-place ops compute bit-identical values.
The transposed convolutions stay as they are: under oneDNN (the CPU decoder, :mod:`.strips`)
they were measured faster than their sub-pixel rewrite (docs/results.md, "Speed and determinism"). The training graph
is untouched: these functions read the same parameters, so weights files stay as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor

from ..derived import derived
from .conditioning import ConditionalSequential, Conditioned, FiLM


def _gdn_parameters(gdn: GDN) -> tuple[Tensor, Tensor]:
    """GDN's reparametrised (beta, gamma), gamma as a 1x1 convolution's weight."""
    channels = gdn.beta.numel()
    return gdn.beta_reparam(gdn.beta), gdn.gamma_reparam(gdn.gamma).reshape(channels, channels, 1, 1)


def gdn_inplace(x: Tensor, gdn: GDN) -> Tensor:
    """``gdn(x)``, overwriting ``x`` (CompressAI's GDN, same operations in the same order)."""
    beta, gamma = derived(gdn, "gdn", (gdn.beta, gdn.gamma), lambda: _gdn_parameters(gdn))
    norm = F.conv2d(torch.mul(x, x), gamma, beta)
    norm = norm.sqrt_() if gdn.inverse else norm.rsqrt_()
    return x.mul_(norm)


def film_inplace(x: Tensor, film: FiLM, cond: Tensor) -> Tensor:
    """``film(x, cond)``, overwriting ``x``."""
    gamma, beta = film.proj(cond)[:, :, None, None].chunk(2, dim=1)
    return x.mul_(1 + gamma).add_(beta)


@torch.no_grad()
def run_inplace(transform: ConditionalSequential, inputs: Tensor, cond: Tensor) -> Tensor:
    """Apply ``transform`` (g_a or g_s) layer by layer, GDN and FiLM in place.

    GDN and FiLM overwrite their input, so only buffers made here are handed to them (``inputs``
    is the caller's and goes through a convolution first).
    """
    x = inputs
    for layer in transform.layers:
        owned = x is not inputs
        if isinstance(layer, FiLM):
            x = film_inplace(x, layer, cond) if owned else layer(x, cond)
        elif isinstance(layer, Conditioned):
            x = layer(x, cond)
        elif isinstance(layer, GDN):
            x = gdn_inplace(x, layer) if owned else layer(x)
        else:
            x = layer(x)
    return x
