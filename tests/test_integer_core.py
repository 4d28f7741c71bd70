"""The integer core computes CompressAI's float path, up to its documented roundings, on the bundled model.

``odic.entropy`` and ``GainTable.interpolate_fixed`` replace the float hyper-synthesis and gain
interpolation of the entropy parameters by exact integer arithmetic. What must hold, with the same
weights: each rounding the docstrings name (weights to 2**-14, biases to 2**-24, activations floored
to 2**-10, gains to 2**-16) is the only difference, and the scale indexes are CompressAI's
``GaussianConditional.build_indexes``. Each tolerance below is derived from those roundings.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from odic.bitstream import ALPHA_CODE_MAX, QUALITY_CODE_MAX
from odic.entropy import ACT_FRAC_BITS, WEIGHT_FRAC_BITS, HyperSynthesis, from_fixed, scale_indexes_fixed, to_fixed
from odic.model.conditioning import GAIN_FRAC_BITS

LSB = 2.0**-ACT_FRAC_BITS  # one step of the fixed-point activations
W_STEP = 2.0**-WEIGHT_FRAC_BITS
B_STEP = 2.0 ** -(WEIGHT_FRAC_BITS + ACT_FRAC_BITS)
#: Conditions: both ends of the (quality, observer) range and one pair of codes off the grid.
CONDITIONS = [(0, 0), (6173, 389), (QUALITY_CODE_MAX, ALPHA_CODE_MAX)]


@pytest.fixture(scope="module")
def model(codec):
    return codec.model


def _hyper_latent(model, h: int, w: int, seed: int) -> torch.Tensor:
    """A decoded hyper-latent drawn from the model's own prior of z (the entropy bottleneck's CDFs).

    That is the distribution the hyper-latents of real images are trained to follow: most channels
    nearly always 0, a few with symbols in the tens.
    """
    eb = model.entropy_bottleneck
    g = torch.Generator().manual_seed(seed)
    symbols = torch.empty(model.config.N, h * w)
    for c in range(model.config.N):
        n = int(eb._cdf_length[c])
        cdf = eb._quantized_cdf[c, : n - 1].contiguous()  # without the escape symbol's interval
        u = torch.randint(0, int(cdf[-1]), (h * w,), generator=g, dtype=torch.int32)
        symbols[c] = (torch.searchsorted(cdf, u, right=True) - 1 + eb._offset[c]).float()
    return symbols.view(1, -1, h, w) + model.z_medians()


def _op(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, weight, None, layer.stride, layer.padding, layer.output_padding)
    return F.conv2d(x, weight, None, layer.stride, layer.padding)


def _one_layer(layer: nn.Module) -> HyperSynthesis:
    """A HyperSynthesis of just ``layer`` (no ReLU: it is the last): ``forward_fixed`` one layer at a time."""
    hs = HyperSynthesis(1, 2)
    hs.layers = nn.ModuleList([layer])
    return hs


# ------------------------------------------------------------------ gains
@pytest.mark.parametrize("table", ["gain", "inv_gain", "hyper_gain", "inv_hyper_gain"])
def test_interpolate_fixed_is_the_float_interpolation_rounded(model, table):
    """``interpolate_fixed`` = ``GainTable.forward`` up to its two roundings, on and off the grid.

    Integer path: the table rounded to 2**-16 (each entry off by at most 2**-17; a bilinear mix has
    weights summing to one, so the mix too), then a floor division (down by less than 2**-16). So
    ``fixed - float`` lies in (-2**-16 - 2**-17, 2**-17]. The float side runs in float64, whose own
    error (~1e-16) is far inside the 1e-12 slack.
    """
    gains = getattr(model, table)
    float64 = copy.deepcopy(gains).double()
    g = torch.Generator().manual_seed(1)
    levels = gains.levels
    codes = [(q, a) for q in {0, QUALITY_CODE_MAX, *(k * QUALITY_CODE_MAX // (levels - 1) for k in range(levels))}
             for a in (0, ALPHA_CODE_MAX)]
    codes += [(int(q), int(a)) for q, a in zip(torch.randint(0, QUALITY_CODE_MAX + 1, (40,), generator=g),
                                               torch.randint(0, ALPHA_CODE_MAX + 1, (40,), generator=g), strict=True)]
    step, slack = 2.0**-GAIN_FRAC_BITS, 1e-12
    for q, a in codes:
        fixed = gains.interpolate_fixed(q, a).double() * step
        with torch.no_grad():
            ref = float64(torch.tensor([q / QUALITY_CODE_MAX], dtype=torch.float64),
                          torch.tensor([a / ALPHA_CODE_MAX], dtype=torch.float64)).flatten()
        diff = fixed - ref
        assert diff.max() <= step / 2 + slack, (q, a, diff.max().item())
        assert diff.min() > -(step + step / 2) - slack, (q, a, diff.min().item())


# ------------------------------------------------------------------ hyper-synthesis
def test_each_fixed_layer_is_the_float_layer_floored(model):
    """Layer by layer, fed the same fixed-point input, ``forward_fixed`` is the float layer floored to 2**-10.

    With the weights it uses (rounded to 2**-14, biases to 2**-24) every product and sum is a
    multiple of 2**-24 well inside float64's 53 bits, so the float64 reference is exact and the only
    difference is the floor: ``fixed - float`` in (-2**-10, 0], no slack. With the float weights
    each weight is off by at most 2**-15, so a sum over inputs x moves by at most 2**-15 * sum|x|
    (plus 2**-25 for the bias).
    """
    z = _hyper_latent(model, 4, 6, seed=0)
    ihg = model.inv_hyper_gain.interpolate_fixed(6173, 389).double()
    x_fixed = torch.floor(to_fixed(z) * ihg.view(1, -1, 1, 1) / float(1 << GAIN_FRAC_BITS))
    for i, layer in enumerate(model.h_s.layers):
        with torch.no_grad():
            out = torch.cat(_one_layer(layer).forward_fixed(x_fixed), dim=1)
        x = x_fixed / float(1 << ACT_FRAC_BITS)
        w, b = layer.weight.detach().double(), layer.bias.detach().double().view(1, -1, 1, 1)
        w_used, b_used = torch.round(w / W_STEP) * W_STEP, torch.round(b / B_STEP) * B_STEP
        diff = out * LSB - (_op(layer, x, w_used) + b_used)
        assert diff.max() <= 0 and diff.min() > -LSB, (i, diff.min().item(), diff.max().item())
        bound = _op(layer, x.abs(), torch.full_like(w, W_STEP / 2)) + B_STEP / 2 + 1e-12
        diff = out * LSB - (_op(layer, x, w) + b)
        assert (diff <= bound).all() and (diff > -LSB - bound).all(), i
        assert diff.abs().max() > LSB  # the weight rounding is visible: the bound is not idle
        x_fixed = out.clamp_min(0) if i < len(model.h_s.layers) - 1 else out


def _float_path_with_error_model(model, z: torch.Tensor, q: int, a: int):
    """The training float path in float64, and the mean and spread of the integer core's difference from it.

    Linear error propagation through the same layers: at each layer the integer core (i) uses the
    rounded weights and bias, a known, deterministic difference ``conv(x, w_used - w)``, and (ii)
    floors every positive output to 2**-10: a difference uniform in (-2**-10, 0], mean -2**-11,
    variance 2**-20 / 12, independent from element to element. Both travel through the later
    layers as any small input change does: the mean through the weights, the variance through the
    squared weights, ReLU passing only the active outputs. The hyper-latent's own conversion (to
    fixed point, times the fixed-point gain, floored) is known exactly and enters as the mean.
    """
    h_s = copy.deepcopy(model.h_s).double()
    gain = copy.deepcopy(model.inv_hyper_gain).double()
    qt, at = (torch.tensor([v], dtype=torch.float64) for v in (q / QUALITY_CODE_MAX, a / ALPHA_CODE_MAX))
    with torch.no_grad():
        x = z.double() * gain(qt, at)
    ihg = model.inv_hyper_gain.interpolate_fixed(q, a).double()
    x_fixed = torch.floor(to_fixed(z) * ihg.view(1, -1, 1, 1) / float(1 << GAIN_FRAC_BITS))
    mean, var = x_fixed * LSB - x, torch.zeros_like(x)
    for i, layer in enumerate(h_s.layers):
        w, b = layer.weight.detach(), layer.bias.detach().view(1, -1, 1, 1)
        w_used, b_used = torch.round(w / W_STEP) * W_STEP, torch.round(b / B_STEP) * B_STEP
        pre = _op(layer, x, w) + b
        mean = _op(layer, mean, w) + _op(layer, x, w_used - w) + (b_used - b)
        var = _op(layer, var, w * w)
        active = (pre > 0).double() if i < len(h_s.layers) - 1 else torch.ones_like(pre)
        x = pre.clamp_min(0) if i < len(h_s.layers) - 1 else pre
        mean, var = (mean - LSB / 2) * active, (var + LSB**2 / 12) * active
    return x.chunk(2, dim=1), mean.chunk(2, dim=1), var.sqrt().chunk(2, dim=1)


@pytest.fixture(scope="module")
def paths(model):
    """For each condition: the integer core's (indexes, scales, means) and the float path with its error model."""
    out = []
    for seed, (q, a) in enumerate(CONDITIONS):
        z = _hyper_latent(model, 4, 6, seed=seed)
        ihg = model.inv_hyper_gain.interpolate_fixed(q, a).double()
        x_fixed = torch.floor(to_fixed(z) * ihg.view(1, -1, 1, 1) / float(1 << GAIN_FRAC_BITS))
        with torch.no_grad():
            scales_fixed, means_fixed = model.h_s.forward_fixed(x_fixed)
        assert all(torch.equal(u, v) for u, v in zip(model.entropy_parameters(z, q, a), (scales_fixed, means_fixed),
                                                          strict=True))
        # The coder's indexes and float means of these parameters (a context, where there is one,
        # refines them further from decoded values; tests/test_context.py checks that part).
        indexes = scale_indexes_fixed(scales_fixed, model.gaussian_conditional.scale_table)
        means = from_fixed(means_fixed)
        out.append(((q, a), indexes, scales_fixed, means_fixed, means, *_float_path_with_error_model(model, z, q, a)))
    return out


#: The difference must lie within 7 spreads of its predicted mean: for a Gaussian that misses once in
#: 4e11 values, and a sum of uniform roundings has lighter tails still; the test checks ~4e5 values.
SIGMAS = 7.0


def test_forward_fixed_matches_the_float_forward(paths):
    """Scales and means of the integer core are the float path's, within the error its roundings predict."""
    residuals = []
    for cond, _, scales_fixed, means_fixed, means, floats, mean, spread in paths:
        for name, fixed, ref, m, s in zip(("scales", "means"), (scales_fixed, means_fixed), floats, mean, spread,
                                          strict=True):
            r = (fixed * LSB - ref - m) / s
            assert r.abs().max() <= SIGMAS, (cond, name, r.abs().max().item())
            residuals.append(r.flatten())
        assert torch.equal(means.double(), means_fixed * LSB)  # the float means are the integers, exactly
    # The error model explains the difference (residuals of unit spread): the tolerance is not idle.
    spread = torch.cat(residuals).std().item()
    assert 0.8 < spread < 1.25, spread


def test_scale_indexes_are_compressais_build_indexes(model):
    """``scale_indexes_fixed`` is ``GaussianConditional.build_indexes`` of the same scales, exactly.

    Scales at, one step below and one step above every table entry, below the lower bound, negative,
    and huge: where an off-by-one in the thresholds (< against <=, floor against round) would show.
    """
    gc = model.gaussian_conditional
    table = torch.floor(gc.scale_table.double() / LSB)
    scales_fixed = torch.cat([table - 1, table, table + 1, torch.tensor([-5000.0, -1, 0, 1, 50, 1e7])])
    expected = gc.build_indexes(from_fixed(scales_fixed))
    assert torch.equal(scale_indexes_fixed(scales_fixed, gc.scale_table), expected)
    assert set(expected.tolist()) == set(range(len(gc.scale_table)))  # every bucket was reached


def test_entropy_parameters_indexes_match_the_float_path(model, paths):
    """The indexes equal CompressAI's for the float scales, but where the float scale lies within the
    predicted error of a bucket boundary; there they may be the neighbouring bucket, never further."""
    gc = model.gaussian_conditional
    for cond, indexes, scales_fixed, _, _, (scales, _), (mean, _), (spread, _) in paths:
        assert torch.equal(indexes, gc.build_indexes(from_fixed(scales_fixed)))
        # The buckets between the float scale and the integer core's predicted scale (mean error
        # +- SIGMAS spreads): one where no bucket boundary is that close to the float scale.
        lo = gc.build_indexes(torch.minimum(scales, scales + mean - SIGMAS * spread))
        hi = gc.build_indexes(torch.maximum(scales, scales + mean + SIGMAS * spread))
        assert ((lo <= indexes) & (indexes <= hi)).all(), cond
        # That reach never spans a whole bucket (13% of the scale, 14 steps at the smallest), so an
        # index is CompressAI's or a neighbour of it, and a neighbour only next to a boundary.
        assert (hi - lo).max() <= 1, cond
        float_idx = gc.build_indexes(scales)
        assert torch.equal(indexes[lo == hi], float_idx[lo == hi]), cond
        assert (indexes - float_idx).abs().max() <= 1, cond
