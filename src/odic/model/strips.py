"""The CPU synthesis in fixed strips, each on one thread: the same pixels at any thread count, all cores busy.

Why: oneDNN's convolutions are the fastest on the CPU, but with several threads they split their
work by thread count, so one stream could decode a grey level apart with 1 and 2 threads. Here
the latent is cut into horizontal strips whose bounds depend only on its height, each strip runs
on exactly one intra-op thread with oneDNN's kernels (``odic.parallel``), and the thread count
only decides how many strips run at once.
A strip reads ``STRIP_HALO`` latent rows beyond its own on each side, which covers the
synthesis' receptive field, so the kept rows are those of the whole image (up to float rounding:
no seams).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..parallel import map_single_threaded
from .conditioning import ConditionalSequential
from .inplace import run_inplace

#: Latent rows a strip keeps (256 px): small enough that a 768x512 image gives two strips.
STRIP_ROWS = 16
#: Latent rows of context on each side. Each of g_s's four stride-2 transposed convolutions reads
#: one input row on either side, so an output pixel sees 1 + 1/2 + 1/4 + 1/8 < 2 latent rows away.
STRIP_HALO = 2


def strip_bounds(rows: int) -> list[tuple[int, int, int, int]]:
    """``(read_start, read_end, keep_from, keep_rows)`` in latent rows for a latent ``rows`` high."""
    bounds = []
    for start in range(0, rows, STRIP_ROWS):
        end = min(start + STRIP_ROWS, rows)
        read_start, read_end = max(0, start - STRIP_HALO), min(rows, end + STRIP_HALO)
        bounds.append((read_start, read_end, start - read_start, end - start))
    return bounds


def _synthesize_strip(g_s: ConditionalSequential, y: Tensor, cond: Tensor) -> Tensor:
    return run_inplace(g_s, y.contiguous(memory_format=torch.channels_last), cond).contiguous()


@torch.no_grad()
def synthesize_in_strips(g_s: ConditionalSequential, y: Tensor, cond: Tensor, workers: int | None = None) -> Tensor:
    """``g_s(y, cond)`` on the CPU, strip by strip on ``workers`` threads (default: torch's thread count)."""
    bounds = strip_bounds(y.shape[-2])
    strips = [y[..., a:b, :] for a, b, _, _ in bounds]
    outs = map_single_threaded(lambda s: _synthesize_strip(g_s, s, cond), strips, workers)
    scale = outs[0].shape[-2] // (bounds[0][1] - bounds[0][0])  # g_s's upsampling (16)
    return torch.cat([o[..., k * scale : (k + n) * scale, :] for o, (_, _, k, n) in zip(outs, bounds, strict=True)],
                     dim=-2)
