"""odic's calls into CompressAI's rANS coder give CompressAI's bytes and symbols (streams unchanged)."""

from __future__ import annotations

import pytest
import torch

from odic.bitstream import FormatError
from odic.model import rans
from odic.model.guards import check_symbol_range


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
    symbols = rans.Decoder(gc, string + bytes(64)).decode(indexes[0])
    assert symbols.dtype == torch.int32 and symbols.shape == indexes[0].shape
    assert torch.equal(symbols.float() + means[0], gc.decompress([string], indexes, means=means)[0])


def test_decoding_in_passes_reads_one_string_encoded_at_once(codec):
    """The checkerboard's two passes share one string: decoding it in two calls gives both parts."""
    gc, y, indexes, means = _latents(codec.model, 2)
    symbols = torch.round(y - means)[0].flatten()
    flat_indexes = indexes[0].flatten()
    string = rans.encode(gc, symbols, flat_indexes)
    decoder = rans.Decoder(gc, string + bytes(64))
    first, second = decoder.decode(flat_indexes[:500]), decoder.decode(flat_indexes[500:])
    assert torch.equal(torch.cat([first, second]).float(), symbols)


def test_symbol_bound_catches_int32_min():
    """rANS gives int32 symbols; |int32 min| wraps to a negative int32, which a plain abs() would let through."""
    assert torch.tensor([-(2**31)], dtype=torch.int32).abs().item() < 0  # the trap itself
    with pytest.raises(FormatError, match="out of range"):
        check_symbol_range(torch.tensor([0, -(2**31), 3], dtype=torch.int32), "y")
    check_symbol_range(torch.tensor([-5, 0, 7], dtype=torch.int32), "y")
