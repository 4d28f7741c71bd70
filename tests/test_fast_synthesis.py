"""The decoder's sub-pixel rewrite computes the training graph's function."""

from __future__ import annotations

import pytest
import torch
from compressai.models.utils import deconv

from odic.model import ModelConfig, OdicModel
from odic.model.fast_synthesis import run_synthesis, subpixel_deconv


@pytest.mark.parametrize("cin,cout", [(24, 16), (16, 3)])
def test_subpixel_equals_transposed_conv(cin, cout):
    torch.manual_seed(0)
    layer = deconv(cin, cout).double()
    x = torch.randn(2, cin, 5, 7, dtype=torch.float64)
    assert torch.allclose(subpixel_deconv(x, layer), layer(x), atol=1e-12)


def test_rearranged_weights_follow_parameter_changes():
    """The sub-pixel weights are cached per layer; an in-place change to the parameters rebuilds them."""
    torch.manual_seed(1)
    layer = deconv(24, 16).double()
    x = torch.randn(1, 24, 4, 6, dtype=torch.float64)
    subpixel_deconv(x, layer)
    with torch.no_grad():
        layer.weight.mul_(-2.0)
        layer.bias.add_(1.0)
    assert torch.allclose(subpixel_deconv(x, layer), layer(x), atol=1e-12)
    layer.load_state_dict(deconv(24, 16).double().state_dict())
    assert torch.allclose(subpixel_deconv(x, layer), layer(x), atol=1e-12)


def test_synthesis_matches_training_graph():
    torch.manual_seed(0)
    model = OdicModel(ModelConfig(N=32, M=48)).eval()
    for p in model.parameters():  # FiLM starts at the identity: give it something to do
        p.data.add_(0.01 * torch.randn_like(p))
    y = torch.randn(1, 48, 4, 6)
    cond = model.embed(torch.tensor([0.3]), torch.tensor([0.7]))
    with torch.no_grad():
        assert torch.allclose(run_synthesis(model.g_s, y, cond), model.g_s(y, cond), atol=1e-5)


def test_unsupported_deconv_is_refused():
    with pytest.raises(ValueError, match="sub-pixel"):
        subpixel_deconv(torch.zeros(1, 4, 3, 3), torch.nn.ConvTranspose2d(4, 4, 3, stride=2))
