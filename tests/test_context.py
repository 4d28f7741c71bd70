"""The context models: causal, exact in integers, and a lossless part of the stream."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from odic.bitstream import FormatError
from odic.model import OdicModel

from .conftest import smooth_image

QCODE, ACODE = 6000, 0


KINDS = ("checkerboard", "channel-checkerboard")


def _with_context(base: OdicModel, kind: str, seed: int | None) -> OdicModel:
    """``base`` with a context: fresh (``seed`` None) or randomised so that it matters (for channel
    slices, in a shuffled channel order too)."""
    model = OdicModel(replace(base.config, context=kind))
    model.load_state_dict(base.state_dict(), strict=False)
    if seed is not None:
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in model.context.parameters():
                p.copy_(torch.randn_like(p) * 0.02)
        if kind == "channel-checkerboard":
            model.context.set_channel_order(torch.randperm(base.config.M))
    model.update(force=True)
    return model.eval()


@pytest.fixture(scope="module")
def base(codec):
    """The bundled model without its context: the hyperprior alone."""
    model = OdicModel(replace(codec.model.config, context="none"))
    model.load_state_dict({k: v for k, v in codec.model.state_dict().items() if not k.startswith("context.")})
    model.update(force=True)
    return model.eval()


@pytest.fixture(scope="module", params=KINDS)
def trained_like(request, base):
    return _with_context(base, request.param, seed=0)


def _image(h: int = 128, w: int = 192) -> torch.Tensor:
    return torch.from_numpy(smooth_image(h, w, seed=3)).permute(2, 0, 1)[None].float() / 255


def _coder_parameters(model: OdicModel, y_s: torch.Tensor, scales_fixed: torch.Tensor, means_fixed: torch.Tensor):
    """What the encoder computes, pass after pass: every y's (indexes, float means) and its values."""
    values_fixed = torch.zeros_like(means_fixed)
    indexes_all = torch.zeros(y_s.shape, dtype=torch.int32)
    means_all = torch.zeros(y_s.shape)
    for n, mask in enumerate(model.coding_passes(*y_s.shape[-2:])):
        mask = mask.expand_as(y_s)
        indexes, means, pass_means_fixed = model.pass_parameters(n, mask, values_fixed, scales_fixed, means_fixed)
        symbols = torch.round(y_s[mask] - means)
        values_fixed[mask] = symbols.double() * 1024 + pass_means_fixed
        indexes_all[mask], means_all[mask] = indexes, means
    return indexes_all, means_all, values_fixed


def _hyperprior(model: OdicModel, x: torch.Tensor):
    y_s, z_s = model.analyse(x, QCODE, ACODE)
    z_hat = torch.round(z_s - model.z_medians()) + model.z_medians()
    return y_s, *model.entropy_parameters(z_hat, QCODE, ACODE)


def test_passes_cover_every_position_once(trained_like):
    passes = [m.expand(1, trained_like.config.M, 6, 8) for m in trained_like.coding_passes(6, 8)]
    assert torch.equal(torch.stack(passes).sum(0), torch.ones(1, trained_like.config.M, 6, 8, dtype=torch.long))


def test_a_pass_never_reads_its_own_or_later_passes(trained_like):
    """A decoder knows only the earlier passes' values when it needs a pass's parameters: those must
    not move when the values of that pass or of later ones do (else the stream would not decode)."""
    y_s, _ = trained_like.analyse(_image(), QCODE, ACODE)
    scales = torch.rand_like(y_s) + 0.5
    means = torch.randn_like(y_s)
    passes = [m.expand_as(y_s) for m in trained_like.coding_passes(*y_s.shape[-2:])]
    with torch.no_grad():
        reference = trained_like.y_parameters(y_s, scales, means)
        for n, mask in enumerate(passes):
            later = torch.stack(passes[n:]).any(0)
            moved = trained_like.y_parameters(torch.where(later, y_s + 5 * torch.randn_like(y_s), y_s), scales, means)
            for u, v in zip(reference, moved, strict=True):
                assert torch.equal(u[mask], v[mask]), n
        last = passes[-1]
        earlier_moved = trained_like.y_parameters(torch.where(last, y_s, y_s + 3), scales, means)
    assert not torch.equal(reference[1][last], earlier_moved[1][last])  # ... while earlier passes do inform it


@pytest.mark.parametrize("kind", KINDS)
def test_fresh_context_codes_like_the_hyperprior(base, kind):
    """A new context's last layers are zero: the same latents decode as without it, at the same cost."""
    fresh = _with_context(base, kind, seed=None)
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
    _, scales_fixed, means_fixed = _hyperprior(trained_like, x)
    _, means, _ = _coder_parameters(trained_like, y_s, scales_fixed, means_fixed)
    assert torch.equal(y_hat, torch.round(y_s - means) + means)
    image = trained_like.decompress(out["strings"], out["shape"], QCODE, ACODE)["x_hat"]
    assert image.shape == x.shape


def test_context_parameters_are_exact_integers_independent_of_threads(trained_like):
    y_s, scales_fixed, means_fixed = _hyperprior(trained_like, _image())
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(_coder_parameters(trained_like, y_s, scales_fixed, means_fixed))
    finally:
        torch.set_num_threads(threads)
    for result in results[1:]:
        assert all(torch.equal(u, v) for u, v in zip(result, results[0], strict=True))
    assert torch.equal(results[0][1] * 1024, torch.round(results[0][1] * 1024))


def test_integer_context_follows_the_float_one(trained_like):
    """The integer refinement is the float one up to fixed-point rounding (means within 0.01 where
    both rounded the earlier values alike, which is nearly everywhere)."""
    y_s, scales_fixed, means_fixed = _hyperprior(trained_like, _image())
    _, fixed_means, _ = _coder_parameters(trained_like, y_s, scales_fixed, means_fixed)
    with torch.no_grad():
        _, float_means = trained_like.y_parameters(y_s, scales_fixed.float() / 1024, means_fixed.float() / 1024)
    first = trained_like.coding_passes(*y_s.shape[-2:])[0].expand_as(y_s)
    err = (fixed_means - float_means)[~first].abs()
    assert torch.quantile(err, 0.999) < 0.01, err.max()
    assert (fixed_means != means_fixed.float() / 1024)[~first].float().mean() > 0.9  # the context did refine


def test_forged_context_string_fails_cleanly(trained_like):
    out = trained_like.compress(_image(), QCODE, ACODE)
    y_string = bytearray(out["strings"][0][0])
    y_string[len(y_string) // 2] ^= 0x5A
    with pytest.raises(FormatError):
        trained_like.decode_latents([[bytes(y_string)], out["strings"][1]], out["shape"], QCODE, ACODE)


def test_channel_order_must_be_a_permutation(base):
    model = _with_context(base, "channel-checkerboard", seed=None)
    order = torch.arange(base.config.M)
    order[0] = 1
    with pytest.raises(ValueError, match="permutation"):
        model.context.set_channel_order(order)


def test_unknown_context_name_is_refused(base):
    with pytest.raises(ValueError, match="unknown context"):
        replace(copy.copy(base.config), context="autoregressive")
