"""Derived tensors are reused while the parameters stay, and rebuilt as soon as one changes."""

from __future__ import annotations

import gc

import torch
from torch import nn

from odic.derived import _CACHE, derived
from odic.entropy import fixed_weights


def _counting_build(layer: nn.Linear, calls: list) -> tuple:
    def build():
        calls.append(1)
        return (layer.weight * 2,)
    return (layer.weight,), build


def test_same_parameters_build_once():
    layer, calls = nn.Linear(3, 2), []
    params, build = _counting_build(layer, calls)
    first = derived(layer, "double", params, build)
    assert derived(layer, "double", params, build) is first and len(calls) == 1


def test_names_are_separate_entries():
    layer, calls = nn.Linear(3, 2), []
    params, build = _counting_build(layer, calls)
    derived(layer, "a", params, build)
    derived(layer, "b", params, build)
    assert len(calls) == 2


def test_optimizer_step_and_load_state_dict_rebuild():
    torch.manual_seed(0)
    layer = nn.Conv2d(2, 2, 1)
    before = fixed_weights(layer)[0].clone()
    layer(torch.randn(1, 2, 3, 3)).sum().backward()
    torch.optim.SGD(layer.parameters(), lr=1.0).step()
    after_step = fixed_weights(layer)[0]
    assert not torch.equal(after_step, before)
    assert torch.equal(after_step, torch.round(layer.weight.detach().double() * 2.0 ** 14))
    other = nn.Conv2d(2, 2, 1)
    layer.load_state_dict(other.state_dict())
    assert torch.equal(fixed_weights(layer)[0], fixed_weights(other)[0])


def test_cache_does_not_keep_the_module_alive():
    layer, calls = nn.Linear(3, 2), []
    params, build = _counting_build(layer, calls)
    derived(layer, "double", params, build)
    count = len(_CACHE)
    del layer, params, build
    gc.collect()
    assert len(_CACHE) == count - 1
