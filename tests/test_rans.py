"""odic's calls into CompressAI's rANS coder give CompressAI's bytes and symbols (streams unchanged)."""

from __future__ import annotations

import torch

from odic.model import rans


def _latents(model, seed: int):
    torch.manual_seed(seed)
    gc = model.gaussian_conditional
    indexes = torch.randint(0, gc.scale_table.numel(), (1, model.config.M, 6, 9), dtype=torch.int32)
    means = torch.randn(1, model.config.M, 6, 9)
    y = means + torch.randn_like(means) * gc.scale_table[indexes.long()]
    return gc, y, indexes, means


def test_encode_gives_compressais_bytes(codec):
    gc, y, indexes, means = _latents(codec.model, 0)
    symbols = torch.round(y - means)
    assert rans.encode(gc, symbols[0], indexes[0]) == gc.compress(y, indexes, means=means)[0]


def test_decode_inverts_encode(codec):
    gc, y, indexes, means = _latents(codec.model, 1)
    string = gc.compress(y, indexes, means=means)[0]
    symbols = rans.decode(gc, string + bytes(64), indexes[0])
    assert symbols.dtype == torch.int32 and symbols.shape == indexes[0].shape
    assert torch.equal(symbols.float() + means[0], gc.decompress([string], indexes, means=means)[0])
