"""Training precision: the transforms and the classifier in bf16 where the hardware pays for it.

Convolutions dominate a training step. On CPUs with AMX or AVX-512 BF16 (and on GPUs with bf16),
running ``g_a``, ``h_a``, ``g_s`` and the machine observer under bf16 autocast with channels_last
tensors is about twice as fast; the entropy models, likelihoods, MS-SSIM and the losses stay in
fp32 (``OdicModel.forward`` leaves autocast for the entropy part, the loop scores in fp32). On CPUs
without fast bf16 the same autocast is slower than fp32, so ``auto`` times both on the model and
one training batch at start-up and keeps the faster.
"""

from __future__ import annotations

import contextlib
import copy
import time

import torch
from torch import Tensor, nn

PRECISIONS = ("auto", "bf16", "fp32")
#: bf16 must beat fp32 by this factor in the start-up probe to be chosen by ``auto``.
AUTO_MIN_SPEEDUP = 1.15


def probe_seconds(model: nn.Module, x: Tensor, bf16: bool, reps: int = 2) -> float:
    """Seconds per forward + backward of a copy of ``model`` on ``x``, best of ``reps`` after a warm-up.

    Run on the training model and batch itself: how much bf16 pays depends on the layers and the
    crop size (a plain conv stack at 128 px measured slower in bf16 on a CPU where the model at
    256 px ran twice as fast). The global RNG is left as it was.
    """
    probe = copy.deepcopy(model).train()
    if bf16:
        probe = probe.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    q = torch.full((x.shape[0],), 0.5, device=x.device)
    alpha = torch.zeros_like(q)
    best = float("inf")
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        for i in range(reps + 1):  # the first pass warms up the kernels
            t0 = time.perf_counter()
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                out = probe(x, q, alpha)
            out["x_hat"].float().square().mean().backward()
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            if i:
                best = min(best, time.perf_counter() - t0)
    return best


def resolve_precision(name: str, model: nn.Module, x: Tensor) -> str:
    """``bf16`` or ``fp32`` for ``name`` in :data:`PRECISIONS` (``auto`` times ``model`` on the batch ``x``)."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name != "auto":
        return name
    if x.device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    fp32, bf16 = probe_seconds(model, x, False), probe_seconds(model, x, True)
    return "bf16" if fp32 > AUTO_MIN_SPEEDUP * bf16 else "fp32"


class Precision:
    """What a resolved precision changes in the loop: memory format and an autocast region."""

    def __init__(self, name: str, device: torch.device):
        self.name = name
        self.device = device
        self.bf16 = name == "bf16"

    def prepare(self, module: nn.Module) -> nn.Module:
        return module.to(memory_format=torch.channels_last) if self.bf16 else module

    def batch(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.bf16 else x

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


class AutocastObserver(nn.Module):
    """Runs a frozen observer under the run's autocast and hands back fp32 logits and features,
    so the machine loss is computed in fp32 whatever the observer ran in."""

    def __init__(self, observer: nn.Module, precision: Precision):
        super().__init__()
        self.observer = precision.prepare(observer)
        self.precision = precision

    @property
    def feature_layer_names(self) -> list[str]:
        return self.observer.feature_layer_names

    @property
    def kind(self) -> str:
        return self.observer.kind

    def forward(self, x: Tensor, with_features: bool = False):
        with self.precision.autocast():
            out = self.observer(self.precision.batch(x), with_features=with_features)
        if not with_features:
            return out.float()
        logits, feats = out
        return logits.float(), {k: v.float() for k, v in feats.items()}
