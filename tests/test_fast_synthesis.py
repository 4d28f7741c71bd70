"""The decoder's in-place GDN and FiLM compute the training graph's function."""

from __future__ import annotations

import pytest
import torch
from compressai.layers import GDN

from odic.model import ModelConfig, OdicModel
from odic.model.conditioning import FiLM
from odic.model.fast_synthesis import film_inplace, gdn_inplace, run_synthesis


def test_synthesis_matches_training_graph():
    torch.manual_seed(0)
    model = OdicModel(ModelConfig(N=32, M=48)).eval()
    for p in model.parameters():  # FiLM starts at the identity: give it something to do
        p.data.add_(0.01 * torch.randn_like(p))
    y = torch.randn(1, 48, 4, 6)
    cond = model.embed(torch.tensor([0.3]), torch.tensor([0.7]))
    with torch.no_grad():
        assert torch.allclose(run_synthesis(model.g_s, y, cond), model.g_s(y, cond), atol=1e-5)


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


def test_synthesis_leaves_its_input_alone():
    """The in-place layers only ever overwrite buffers the synthesis made itself."""
    torch.manual_seed(4)
    model = OdicModel(ModelConfig(N=32, M=48)).eval()
    y = torch.randn(1, 48, 4, 6)
    before = y.clone()
    run_synthesis(model.g_s, y, model.embed(torch.tensor([0.5]), torch.tensor([0.0])))
    assert torch.equal(y, before)
