"""Inference-only rewrites of the synthesis transform that compute the same function faster.

Decoding runs without oneDNN (its kernels split reductions by thread count, see
``odic.model.guards.deterministic_kernels``), where PyTorch's fallback for a transposed convolution
(``slow_conv_transpose2d``) is the slowest kernel of the whole decoder. A stride-2 transposed
convolution is exactly a stride-1 convolution with ``4 x`` the output channels followed by a
pixel shuffle (the "sub-pixel" form, Shi et al. 2016): each of the four output phases only ever
sees a 3x3 neighbourhood of the input.

GDN and FiLM run in place on the buffer the convolution just produced: at decode sizes (a 50 MB
feature map at 768x512) allocating a fresh tensor, and page-faulting it in, costs five times
the arithmetic of an element-wise op, and the in-place ops compute bit-identical values.

The training graph (``nn.ConvTranspose2d``) is untouched: these
functions read the same parameters, so weights files stay as they are.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import Tensor, nn

from .conditioning import ConditionalSequential, FiLM


def subpixel_weights(deconv: nn.ConvTranspose2d) -> tuple[Tensor, Tensor | None]:
    """(weight, bias) of the 3x3 convolution whose pixel shuffle equals ``deconv``.

    Only CompressAI's ``deconv`` shape is supported: kernel 5, stride 2, padding 2, output
    padding 1 (output = 2 x input). For output row ``2m + r`` the transposed convolution sums
    input rows ``m + d`` (d in -1, 0, 1) with kernel tap ``r + 2 - 2d`` (when in 0..4).
    """
    if (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding) != ((5, 5), (2, 2), (2, 2), (1, 1)):
        raise ValueError("sub-pixel rewrite needs a 5x5, stride 2, padding 2, output padding 1 transposed conv")
    w = deconv.weight  # (C_in, C_out, 5, 5)
    c_in, c_out = w.shape[:2]
    out = w.new_zeros(c_out, 2, 2, c_in, 3, 3)
    for ry in range(2):
        for jy in range(3):
            ky = ry + 4 - 2 * jy
            if not 0 <= ky <= 4:
                continue
            for rx in range(2):
                for jx in range(3):
                    kx = rx + 4 - 2 * jx
                    if 0 <= kx <= 4:
                        out[:, ry, rx, :, jy, jx] = w[:, :, ky, kx].t()
    bias = None if deconv.bias is None else deconv.bias.repeat_interleave(4)
    return out.reshape(4 * c_out, c_in, 3, 3), bias


#: Weights derived from a layer's parameters (sub-pixel rearrangement, GDN reparametrisation), with
#: the parameter versions they were made from: rebuilding them took about 5% of a decode, once per
#: image and tile. Any change to the parameters (an optimizer step, load_state_dict) bumps a version
#: and rebuilds them.
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


def _cached_subpixel_weights(deconv: nn.ConvTranspose2d) -> tuple[Tensor, Tensor | None]:
    params = tuple(p for p in (deconv.weight, deconv.bias) if p is not None)
    return _cached(deconv, params, subpixel_weights)


def subpixel_deconv(x: Tensor, deconv: nn.ConvTranspose2d) -> Tensor:
    """``deconv(x)`` computed as a 3x3 convolution and a pixel shuffle."""
    weight, bias = _cached_subpixel_weights(deconv)
    return F.pixel_shuffle(F.conv2d(x, weight, bias, padding=1), 2)


#: Narrower transposed convolutions (the last one, to RGB) stay as they are: with 3 output channels
#: the sub-pixel form's im2col dominates and it was measured 5x slower (96->3 at 256x384, 2 threads).
SUBPIXEL_MIN_CHANNELS = 16


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
    """Apply ``g_s`` layer by layer, sub-pixel for the wide transposed convolutions.

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
        elif isinstance(layer, nn.ConvTranspose2d) and layer.out_channels >= SUBPIXEL_MIN_CHANNELS:
            x = subpixel_deconv(x, layer)
        else:
            x = layer(x)
    return x
