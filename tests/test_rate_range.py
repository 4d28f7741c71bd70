"""Widening a trained model's rate range (``odic train --init`` with a wider ``--lambda-range``)."""

from __future__ import annotations

import pytest
import torch

from odic.model import ModelConfig, OdicModel
from odic.train.rate_range import widen_state

OLD = ModelConfig(N=16, M=24, levels=6, lambda_min=0.5, lambda_max=160.0)
# One old level step (320 ** 0.2) below and three above: the new grid of 10 levels lines up with the old 6.
WIDE = ModelConfig(N=16, M=24, levels=10, lambda_min=0.5 * 320 ** -0.2, lambda_max=0.5 * 320 ** 1.6)


def _trained_like(seed: int = 0) -> OdicModel:
    """A small model with distinct gains per level and channel, as training leaves them."""
    torch.manual_seed(seed)
    model = OdicModel(OLD)
    with torch.no_grad():
        ramp = torch.logspace(-0.5, 0.4, OLD.levels).view(-1, 1, 1)
        model.gain.gains.copy_(ramp * (1 + 0.3 * torch.rand_like(model.gain.gains)))
        model.inv_gain.gains.copy_(0.5 / model.gain.gains * (1 + 0.1 * torch.rand_like(model.gain.gains)))
        model.hyper_gain.gains.mul_(1 + 0.2 * torch.rand_like(model.hyper_gain.gains))
        model.inv_hyper_gain.gains.mul_(1 + 0.2 * torch.rand_like(model.inv_hyper_gain.gains))
        for p in model.embed.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _widened(old: OdicModel) -> OdicModel:
    wide = OdicModel(WIDE).eval()
    wide.load_state_dict(widen_state(old.state_dict(), OLD, WIDE))
    return wide


def test_widened_model_decodes_the_old_range_as_before():
    old = _trained_like()
    wide = _widened(old)
    x = torch.rand(2, 3, 64, 64)
    alpha = torch.tensor([0.0, 0.7])
    for q_old in (0.0, 0.2, 0.5, 0.9, 1.0):
        q_new = (q_old + 0.2) / 1.8  # same lambda on the wider scale
        qo, qn = torch.full((2,), q_old), torch.full((2,), q_new)
        assert torch.allclose(old.embed(qo, alpha), wide.embed(qn, alpha), atol=1e-5)
        for table in ("gain", "inv_gain", "hyper_gain", "inv_hyper_gain"):
            assert torch.allclose(getattr(old, table)(qo, alpha), getattr(wide, table)(qn, alpha), rtol=1e-5), table
        y_old = old.g_a(x, old.embed(qo, alpha)) * old.gain(qo, alpha)
        y_new = wide.g_a(x, wide.embed(qn, alpha)) * wide.gain(qn, alpha)
        assert torch.allclose(y_old, y_new, rtol=1e-4, atol=1e-5)


def test_new_levels_refine_quantisation_of_the_same_latents():
    wide = _widened(_trained_like())
    g, ig = wide.gain.gains.detach(), wide.inv_gain.gains.detach()
    top = OLD.levels  # index of the old top level in the wide table
    # each level above the old top quantises more finely, and gain * inverse (what g_s sees) is held
    assert (g[top + 1 :] > g[top : -1]).all()
    assert torch.allclose(g[top + 1 :] * ig[top + 1 :], (g[top] * ig[top]).expand_as(g[top + 1 :]), rtol=1e-4)
    assert (g[0] < g[1]).all()  # and the new bottom level more coarsely


@pytest.mark.parametrize("change, message", [
    (dict(N=32), "only the rate range"),
    (dict(lambda_min=1.0), "must contain"),
    (dict(lambda_max=100.0), "must contain"),
])
def test_widening_refuses_what_it_cannot_carry_over(change, message):
    target = ModelConfig(**{**WIDE.to_dict(), **change})
    with pytest.raises(ValueError, match=message):
        widen_state(_trained_like().state_dict(), OLD, target)


def test_train_init_widens_a_narrower_model(tmp_path):
    from odic.train.loop import init_model_weights
    from odic.weights import export_weights, read_weights_file

    old = _trained_like()
    path = tmp_path / "old.pt"
    export_weights(old, path, "tiny-old")
    wide = OdicModel(WIDE)
    init_model_weights(wide, read_weights_file(path), str(path))
    q = torch.tensor([0.6])
    assert torch.allclose(wide.embed((q + 0.2) / 1.8, torch.zeros(1)), old.embed(q, torch.zeros(1)), atol=1e-3)
