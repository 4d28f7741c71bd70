"""The CPU synthesis in strips computes the whole image's synthesis, and the thread count only schedules it."""

from __future__ import annotations

import pytest
import torch

from odic.model import ModelConfig, OdicModel
from odic.model import strips as strips_module
from odic.model.strips import STRIP_ROWS, strip_bounds, synthesize_in_strips


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = OdicModel(ModelConfig(N=32, M=48)).eval()
    for p in model.parameters():  # FiLM starts at the identity: give it something to do
        p.data.add_(0.01 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("rows", [1, STRIP_ROWS - 1, STRIP_ROWS, STRIP_ROWS + 1, 3 * STRIP_ROWS + 5])
def test_strips_keep_every_row_once(rows):
    kept = []
    for read_start, read_end, keep_from, keep_rows in strip_bounds(rows):
        assert 0 <= read_start and read_end <= rows and keep_from + keep_rows <= read_end - read_start
        kept.extend(range(read_start + keep_from, read_start + keep_from + keep_rows))
    assert kept == list(range(rows))


def _inputs(model, rows: int):
    torch.manual_seed(1)
    return torch.randn(1, 48, rows, 5) * 4, model.embed(torch.tensor([0.3]), torch.tensor([0.7]))


def test_strips_equal_the_whole_synthesis(small_model):
    """The halo covers the receptive field: no seam between strips (float rounding apart)."""
    y, cond = _inputs(small_model, 2 * STRIP_ROWS + 3)
    with torch.no_grad():
        whole = small_model.g_s(y, cond)
    assert (synthesize_in_strips(small_model.g_s, y, cond) - whole).abs().max() < 1e-4


def test_without_halo_the_strips_would_seam(small_model, monkeypatch):
    """The check above can fail: with no context rows the strip borders differ from the whole image."""
    monkeypatch.setattr(strips_module, "STRIP_HALO", 0)
    y, cond = _inputs(small_model, 2 * STRIP_ROWS + 3)
    with torch.no_grad():
        whole = small_model.g_s(y, cond)
    assert (synthesize_in_strips(small_model.g_s, y, cond) - whole).abs().max() > 1e-3


def test_workers_do_not_change_a_value(small_model):
    y, cond = _inputs(small_model, 3 * STRIP_ROWS + 2)
    ref = synthesize_in_strips(small_model.g_s, y, cond, workers=1)
    for workers in (2, 4):
        assert torch.equal(synthesize_in_strips(small_model.g_s, y, cond, workers=workers), ref)
