"""Start a model with a wider rate range from a trained one (``odic train --init`` with ``--lambda-range``).

The rate of a conditional model is set by its quality ``q`` in [0, 1], which maps to the
rate-distortion weight ``lambda(q) = lambda_min * (lambda_max / lambda_min) ** q`` and picks gains on
a grid of ``levels`` anchors. A model trained on one range keeps what it learnt when the range is
widened: the condition embedding sees ``q`` through one linear layer, so re-expressing the new
``q`` in the old one's units is an exact change of its first weights and bias, and the gain tables
are re-sampled at the new anchors' lambdas (exactly, where an anchor's lambda is an old anchor's:
choose ``levels`` so that the grids line up). Anchors beyond the old range continue the gains
geometrically and the inverse gains reciprocally (finer or coarser quantisation of the same
latents); training then moves them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..model import ModelConfig
from ..model.conditioning import GAIN_FLOOR

GAIN_PAIRS = (("gain", "inv_gain"), ("hyper_gain", "inv_hyper_gain"))
EMBED_INPUT = "embed.net.0"  # the Linear layer that reads (q, alpha)


def _old_position(new: ModelConfig, old: ModelConfig) -> tuple[float, float]:
    """``(a, b)`` with ``q_old = a * q_new + b`` (both through their lambda)."""
    span = math.log(old.lambda_max / old.lambda_min)
    return math.log(new.lambda_max / new.lambda_min) / span, math.log(new.lambda_min / old.lambda_min) / span


def resample_pair(gain: Tensor, inverse: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """A gain table and its inverse (levels, 2, C) at fractional level ``positions``.

    Inside the old grid: log-linear between levels (exact at whole positions). Outside: the gain
    continues with the median ratio of its two end levels over the live channels (the median:
    channels switched off at one end have absurd ratios), and the inverse gain moves by the
    reciprocal, so each channel's ``gain * inverse`` (the scale the synthesis sees) is held and only
    the quantisation gets finer or coarser.
    """
    last = gain.shape[0] - 1
    log_g, log_i = gain.double().clamp_min(GAIN_FLOOR).log(), inverse.double().clamp_min(GAIN_FLOOR).log()

    def end_slope(a: int, b: int) -> Tensor:
        live = (gain[a] > GAIN_FLOOR) & (gain[b] > GAIN_FLOOR)
        ratios = [(log_g[b, o] - log_g[a, o])[live[o]].median() for o in range(gain.shape[1])]
        return torch.stack(ratios).view(-1, 1)

    g_rows, i_rows = [], []
    for u in positions.tolist():
        if u < 0 or u > last:
            end = 0 if u < 0 else last
            delta = end_slope(0, 1) * u if u < 0 else end_slope(last - 1, last) * (u - last)
            g_rows.append(log_g[end] + delta)
            i_rows.append(log_i[end] - delta)
            continue
        lo = min(math.floor(u), last - 1)
        t = u - lo
        g_rows.append(log_g[lo] * (1 - t) + log_g[lo + 1] * t)
        i_rows.append(log_i[lo] * (1 - t) + log_i[lo + 1] * t)
    return torch.stack(g_rows).exp().to(gain.dtype), torch.stack(i_rows).exp().to(inverse.dtype)


def widen_state(state: dict[str, Tensor], old: ModelConfig, new: ModelConfig) -> dict[str, Tensor]:
    """``state`` of a model with config ``old``, re-expressed for config ``new`` (a wider rate range)."""
    same = ("N", "M", "cond_dim")
    if any(getattr(old, k) != getattr(new, k) for k in same):
        raise ValueError("only the rate range (levels, lambda range) can change from --init; "
                         f"N/M/cond_dim are {old.N}/{old.M}/{old.cond_dim}, asked for {new.N}/{new.M}/{new.cond_dim}")
    if new.lambda_min > old.lambda_min or new.lambda_max < old.lambda_max:
        raise ValueError(f"--lambda-range {new.lambda_min:g} {new.lambda_max:g} must contain the init model's "
                         f"{old.lambda_min:g} {old.lambda_max:g}")
    a, b = _old_position(new, old)
    state = dict(state)
    positions = (a * torch.linspace(0, 1, new.levels, dtype=torch.float64) + b) * (old.levels - 1)
    for name, inverse in GAIN_PAIRS:
        g_key, i_key = f"{name}.gains", f"{inverse}.gains"
        state[g_key], state[i_key] = resample_pair(state[g_key].float(), state[i_key].float(), positions)
    weight, bias = state[f"{EMBED_INPUT}.weight"].double(), state[f"{EMBED_INPUT}.bias"].double()
    state[f"{EMBED_INPUT}.bias"] = (bias + weight[:, 0] * b).float()
    weight = weight.clone()
    weight[:, 0] *= a
    state[f"{EMBED_INPUT}.weight"] = weight.float()
    return state
