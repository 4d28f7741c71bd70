"""Inference-only form of the synthesis transform: the same function with less memory traffic.

GDN and FiLM run in place on the buffer the convolution just produced: at decode sizes (a 50 MB
feature map at 768x512) allocating a fresh tensor, and page-faulting it in, costs five times
the arithmetic of an element-wise op, and the in-place ops compute bit-identical values.
The transposed convolutions stay as they are: under oneDNN (the CPU decoder, :mod:`.strips`)
they were measured faster than their sub-pixel rewrite (docs/results.md, "Speed and determinism"). The training graph
is untouched: these functions read the same parameters, so weights files stay as they are.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor, nn

from .conditioning import ConditionalSequential, FiLM

#: Weights derived from a layer's parameters (GDN's reparametrisation), with the parameter versions
#: they were made from: rebuilding them per strip and tile is wasted work. Any change to the
#: parameters (an optimizer step, load_state_dict) bumps a version and rebuilds them.
_DERIVED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached(layer: nn.Module, params: tuple[Tensor, ...], build):
    """``build(layer)`` memoised per layer until one of ``params`` changes (version, storage)."""
    key = tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in params)
    hit = _DERIVED_CACHE.get(layer)
    if hit is None or hit[0] != key:
        with torch.no_grad():  # inference only: keep no autograd graph alive in the cache
            hit = (key, build(layer))
        _DERIVED_CACHE[layer] = hit
    return hit[1]


def _gdn_parameters(gdn: GDN) -> tuple[Tensor, Tensor]:
    channels = gdn.beta.numel()
    return gdn.beta_reparam(gdn.beta), gdn.gamma_reparam(gdn.gamma).reshape(channels, channels, 1, 1)


def gdn_inplace(x: Tensor, gdn: GDN) -> Tensor:
    """``gdn(x)``, overwriting ``x`` (CompressAI's GDN, same operations in the same order)."""
    beta, gamma = _cached(gdn, (gdn.beta, gdn.gamma), _gdn_parameters)
    norm = F.conv2d(torch.mul(x, x), gamma, beta)
    norm = norm.sqrt_() if gdn.inverse else norm.rsqrt_()
    return x.mul_(norm)


def film_inplace(x: Tensor, film: FiLM, cond: Tensor) -> Tensor:
    """``film(x, cond)``, overwriting ``x``."""
    gamma, beta = film.proj(cond)[:, :, None, None].chunk(2, dim=1)
    return x.mul_(1 + gamma).add_(beta)


@torch.no_grad()
def run_synthesis(g_s: ConditionalSequential, y: Tensor, cond: Tensor) -> Tensor:
    """Apply ``g_s`` layer by layer, GDN and FiLM in place.

    GDN and FiLM overwrite their input, so only buffers made here are handed to them (``y`` is
    the caller's and goes through a convolution first).
    """
    x = y
    for layer in g_s.layers:
        owned = x is not y
        if isinstance(layer, FiLM):
            x = film_inplace(x, layer, cond) if owned else layer(x, cond)
        elif isinstance(layer, GDN):
            x = gdn_inplace(x, layer) if owned else layer(x)
        else:
            x = layer(x)
    return x
