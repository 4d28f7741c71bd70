"""The inference path's in-place GDN and FiLM compute the training graph's function."""

from __future__ import annotations

import pytest
import torch
from compressai.layers import GDN

from odic.model import ModelConfig, OdicModel
from odic.model.conditioning import FiLM
from odic.model.inplace import film_inplace, gdn_inplace, run_inplace


def test_transforms_match_training_graph():
    torch.manual_seed(0)
    model = OdicModel(ModelConfig(N=32, M=48, encoder_blocks=1)).eval()  # a LatentBlock in g_a too
    for p in model.parameters():  # FiLM starts at the identity: give it something to do
        p.data.add_(0.01 * torch.randn_like(p))
    y, x = torch.randn(1, 48, 4, 6), torch.rand(1, 3, 64, 96)
    cond = model.embed(torch.tensor([0.3]), torch.tensor([0.7]))
    with torch.no_grad():
        assert torch.equal(run_inplace(model.g_a, x, cond), model.g_a(x, cond))
        assert torch.allclose(run_inplace(model.g_s, y, cond), model.g_s(y, cond), atol=1e-5)


@pytest.mark.parametrize("inverse", [True, False])
def test_inplace_gdn_is_bit_identical(inverse):
    """Same operations in the same order: the decoder's pixels (and golden vectors) do not move."""
    torch.manual_seed(2)
    gdn = GDN(16, inverse=inverse)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
    x = torch.randn(1, 16, 9, 11)
    with torch.no_grad():
        expected = gdn(x)
        got = gdn_inplace(x.clone(), gdn)
    assert torch.equal(got, expected)


def test_inplace_film_is_bit_identical():
    torch.manual_seed(3)
    film = FiLM(16, 8)
    with torch.no_grad():
        film.proj.weight.normal_()
        film.proj.bias.normal_()
    x, cond = torch.randn(1, 16, 5, 6), torch.randn(1, 8)
    with torch.no_grad():
        assert torch.equal(film_inplace(x.clone(), film, cond), film(x, cond))


def test_transforms_leave_their_input_alone():
    """The in-place layers only ever overwrite buffers the transform made itself."""
    torch.manual_seed(4)
    model = OdicModel(ModelConfig(N=32, M=48)).eval()
    y, x = torch.randn(1, 48, 4, 6), torch.rand(1, 3, 64, 96)
    before_y, before_x = y.clone(), x.clone()
    cond = model.embed(torch.tensor([0.5]), torch.tensor([0.0]))
    run_inplace(model.g_s, y, cond)
    run_inplace(model.g_a, x, cond)
    assert torch.equal(y, before_y) and torch.equal(x, before_x)
