"""The checkerboard context: causal, exact in integers, and a lossless part of the stream."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from odic.bitstream import FormatError
from odic.model import OdicModel
from odic.model.context import anchor_mask

from .conftest import smooth_image

QCODE, ACODE = 6000, 0


def _with_context(base: OdicModel, seed: int | None) -> OdicModel:
    """``base`` with a checkerboard context: fresh (``seed`` None) or randomised so that it matters."""
    model = OdicModel(replace(base.config, context="checkerboard"))
    model.load_state_dict(base.state_dict(), strict=False)
    if seed is not None:
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in model.context.parameters():
                p.copy_(torch.randn_like(p) * 0.02)
    model.update(force=True)
    return model.eval()


@pytest.fixture(scope="module")
def base(codec):
    return codec.model


@pytest.fixture(scope="module")
def trained_like(base):
    return _with_context(base, seed=0)


def _image(h: int = 128, w: int = 192) -> torch.Tensor:
    return torch.from_numpy(smooth_image(h, w, seed=3)).permute(2, 0, 1)[None].float() / 255


def test_non_anchor_parameters_never_read_non_anchors(trained_like):
    """A decoder knows only the anchors when it needs the non-anchors' parameters: those must not move
    when the non-anchors' values do (else the stream would not decode)."""
    y_s, _ = trained_like.analyse(_image(), QCODE, ACODE)
    scales = torch.rand_like(y_s) + 0.5
    means = torch.randn_like(y_s)
    mask = anchor_mask(*y_s.shape[-2:]).expand_as(y_s)
    moved = torch.where(mask, y_s, y_s + 5 * torch.randn_like(y_s))
    with torch.no_grad():
        a = trained_like.y_parameters(y_s, scales, means)
        b = trained_like.y_parameters(moved, scales, means)
        anchors_moved = trained_like.y_parameters(torch.where(mask, y_s + 3, y_s), scales, means)
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)
    assert not torch.equal(a[1][~mask], anchors_moved[1][~mask])  # ... while anchors do inform them


def test_fresh_context_codes_like_the_hyperprior(base):
    """A new context's last layer is zero: the same latents decode as without it, at the same cost."""
    fresh = _with_context(base, seed=None)
    x = _image()
    plain, ctx = base.compress(x, QCODE, ACODE), fresh.compress(x, QCODE, ACODE)
    y_plain, _ = base.decode_latents(plain["strings"], plain["shape"], QCODE, ACODE)
    y_ctx, _ = fresh.decode_latents(ctx["strings"], ctx["shape"], QCODE, ACODE)
    assert torch.equal(y_plain, y_ctx)
    assert abs(len(ctx["strings"][0][0]) - len(plain["strings"][0][0])) <= 8  # only the rANS tail differs


def test_context_stream_round_trips(trained_like):
    """Encoder and decoder agree on every y: the decoded latents are the encoder's rounded ones."""
    x = _image()
    y_s, z_s = trained_like.analyse(x, QCODE, ACODE)
    out = trained_like.compress_latents(y_s, z_s, QCODE, ACODE)
    y_hat, z_hat = trained_like.decode_latents(out["strings"], out["shape"], QCODE, ACODE)
    assert (y_hat - y_s).abs().max() <= 0.5 + 1e-4  # rounded around whichever means the coder used
    image = trained_like.decompress(out["strings"], out["shape"], QCODE, ACODE)["x_hat"]
    assert image.shape == x.shape


def test_context_parameters_are_exact_integers_independent_of_threads(trained_like):
    y_s, z_s = trained_like.analyse(_image(), QCODE, ACODE)
    z_hat = torch.round(z_s - trained_like.z_medians()) + trained_like.z_medians()
    scales, means = trained_like.entropy_parameters(z_hat, QCODE, ACODE)
    symbols = torch.round(y_s - means / 1024).int()
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(trained_like.pass_parameters(1, symbols, scales, means))
    finally:
        torch.set_num_threads(threads)
    for indexes, m in results[1:]:
        assert torch.equal(indexes, results[0][0]) and torch.equal(m, results[0][1])
    assert torch.equal(results[0][1] * 1024, torch.round(results[0][1] * 1024))


def test_integer_context_follows_the_float_one(trained_like):
    """The integer refinement is the float one up to fixed-point rounding (means within 0.01)."""
    y_s, z_s = trained_like.analyse(_image(), QCODE, ACODE)
    z_hat = torch.round(z_s - trained_like.z_medians()) + trained_like.z_medians()
    scales_fixed, means_fixed = trained_like.entropy_parameters(z_hat, QCODE, ACODE)
    scales, means = scales_fixed.float() / 1024, means_fixed.float() / 1024
    symbols = torch.round(y_s - means)
    _, fixed_means = trained_like.pass_parameters(1, symbols, scales_fixed, means_fixed)
    with torch.no_grad():
        _, float_means = trained_like.y_parameters(y_s, scales, means)
    rest = ~anchor_mask(*y_s.shape[-2:]).expand_as(y_s)
    err = (fixed_means - float_means)[rest].abs()
    assert err.max() < 0.01, err.max()
    assert (fixed_means != means)[rest].float().mean() > 0.9  # the context did refine the means


def test_forged_context_string_fails_cleanly(trained_like):
    out = trained_like.compress(_image(), QCODE, ACODE)
    y_string = bytearray(out["strings"][0][0])
    y_string[len(y_string) // 2] ^= 0x5A
    with pytest.raises(FormatError):
        trained_like.decode_latents([[bytes(y_string)], out["strings"][1]], out["shape"], QCODE, ACODE)


def test_unknown_context_name_is_refused(base):
    with pytest.raises(ValueError, match="unknown context"):
        replace(copy.copy(base.config), context="autoregressive")
