"""Train a context model on the latents of a frozen model (``odic train --context-only``).

Why this stage exists: the context only changes how y is entropy-coded, not what the transforms
keep, so it can be trained on latents computed once. The analysis runs once per crop (a cache of
``context_cache`` crops at random qualities and observers) and each step then costs only the context's
small convolutions: thousands of steps an hour on two CPU cores, where end-to-end training does a
few hundred. The loss is y's rate (noisy quantisation, as training always uses); z, the
transforms and h_s are not touched, so every other tensor of the model stays as it was. A
channel-slice context first orders the channels by the bits they cost under the hyperprior on the
cache, the costliest first, so that the slices coded first inform the most.

Validation is the real discrete rate of y (symbols rounded around the means the coder uses) on
held-out photos at fixed conditions, with and without the context: the saving it reports is the
saving in coded bytes of y, give or take the rANS overhead.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ..model import ModelConfig, OdicModel
from ..weights import read_weights_file
from .checkpoint import atomic_save
from .data import CropSampler, list_images, load_images
from .loop import StopRequest, TrainConfig, append_csv, init_model_weights, model_config

#: (quality, alpha) of the validation latents: both observers at a low, middle and high rate.
VAL_CONDITIONS = ((0.1, 0.0), (0.5, 0.0), (0.9, 0.0), (0.1, 1.0), (0.5, 1.0), (0.9, 1.0))


@dataclass
class LatentBatch:
    """What the context needs of a crop: y_s and h_s's float parameters (all (B, M, h, w))."""

    y_s: Tensor
    scales: Tensor
    means: Tensor

    def select(self, idx: Tensor) -> LatentBatch:
        return LatentBatch(self.y_s[idx], self.scales[idx], self.means[idx])


@torch.no_grad()
def hyper_latents(model: OdicModel, x: Tensor, q: Tensor, alpha: Tensor) -> LatentBatch:
    """The frozen model's y_s and hyperprior parameters, z rounded as the coder rounds it."""
    y_s, z_s = model.gained_latents(x, q, alpha)
    z_hat = torch.round(z_s - model.z_medians()) + model.z_medians()
    scales, means = model.h_s(z_hat * model.inv_hyper_gain(q, alpha))
    return LatentBatch(y_s, scales, means)


def sample_conditions(n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Quality uniform; alpha 0, 1 or uniform in between, a third each (as the model is used)."""
    q = torch.rand(n, generator=g)
    kind = torch.randint(3, (n,), generator=g)
    alpha = torch.where(kind == 0, 0.0, torch.where(kind == 1, 1.0, torch.rand(n, generator=g)))
    return q, alpha


def build_cache(model: OdicModel, sampler: CropSampler, count: int, chunk: int, g: torch.Generator,
                log=print) -> LatentBatch:
    parts = []
    start = time.time()
    for done in range(0, count, chunk):
        n = min(chunk, count - done)
        q, alpha = sample_conditions(n, g)
        parts.append(hyper_latents(model, sampler.batch(n), q, alpha))
        if (done // chunk) % 50 == 0:
            log(f"cache {done + n}/{count} crops, {time.time() - start:.0f} s")
    return LatentBatch(*(torch.cat([getattr(p, f) for p in parts]) for f in ("y_s", "scales", "means")))


def y_bits(model: OdicModel, batch: LatentBatch, noisy: bool, use_context: bool = True) -> Tensor:
    """Bits of y per channel (M,), summed over the batch and the positions.

    ``noisy``: training's estimate (uniform noise); else the coder's (symbols rounded around the means).
    """
    scales, means = batch.scales, batch.means
    if use_context:
        scales, means = model.y_parameters(batch.y_s, scales, means)
    if noisy:
        values = batch.y_s + torch.empty_like(batch.y_s).uniform_(-0.5, 0.5)
    else:
        values = torch.round(batch.y_s - means) + means
    gc = model.gaussian_conditional
    bits = -torch.log2(gc.likelihood_lower_bound(gc._likelihood(values, scales, means)))
    return bits.sum(dim=(0, 2, 3))


@torch.no_grad()
def validation_set(model: OdicModel, images: Tensor) -> list[tuple[float, float, LatentBatch, Tensor]]:
    """Per ``VAL_CONDITIONS`` point: its latents and y's bits without the context (which training
    does not change, so they are counted once)."""
    n = images.shape[0]
    out = []
    for q, a in VAL_CONDITIONS:
        batch = hyper_latents(model, images, torch.full((n,), q), torch.full((n,), a))
        out.append((q, a, batch, y_bits(model, batch, noisy=False, use_context=False).sum()))
    return out


@torch.no_grad()
def validate(model: OdicModel, val: list[tuple[float, float, LatentBatch, Tensor]]) -> list[dict]:
    rows = []
    for q, alpha, batch, bits_before in val:
        bits = y_bits(model, batch, noisy=False).sum()
        rows.append({"quality": q, "alpha": alpha, "y_bits": bits.item(), "y_bits_hyperprior": bits_before.item(),
                     "y_saving": (bits_before - bits).item() / bits_before.item()})
    return rows


def train_context(cfg: TrainConfig, log=print) -> Path:
    """Train only the context of ``cfg.init`` (``--context-only``); checkpoints ``out/last.pt``.

    The checkpoint has the usual fields (``odic export`` turns it into a weights file; every tensor
    but the context's is ``cfg.init``'s), plus the context's optimizer for ``--resume``.
    """
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    if not cfg.init and not (cfg.resume and ckpt_path.exists()):
        raise ValueError("context-only training needs the model to add a context to (--init WEIGHTS)")
    if not cfg.resume and ckpt_path.exists():
        raise ValueError(f"{cfg.out} already holds a training run (last.pt): pass --resume to continue it, "
                         "or choose another --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    resumed = torch.load(ckpt_path, map_location="cpu", weights_only=False) if cfg.resume and ckpt_path.exists() \
        else None
    fresh_context = False  # a context added now (not resumed, not continued from --init)
    if resumed is not None:
        model = OdicModel(ModelConfig(**resumed["model_config"]))
        model.load_state_dict(resumed["model"])
    else:
        init = read_weights_file(cfg.init)
        init_config = ModelConfig(**init["config"])
        fresh_context = init_config.context == "none"
        model = OdicModel(replace(init_config, context=model_config(cfg, init_config).context))
        init_model_weights(model, init, cfg.init)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.context.parameters():
        p.requires_grad_(True)
    model.eval()  # nothing but the context learns, and nothing else changes behaviour
    optimizer = torch.optim.Adam(model.context.parameters(), lr=cfg.lr)
    step = 0
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        step = int(resumed["step"])
        log(f"resumed at step {step}")

    files = list_images(cfg.data)
    train_files, val_files = files[:-cfg.val_count], files[-cfg.val_count:]
    g = torch.Generator().manual_seed(cfg.seed + step)  # a resumed run draws a fresh cache
    sampler = CropSampler(load_images(train_files), cfg.crop, cfg.seed + step)
    latents = build_cache(model, sampler, cfg.context_cache, chunk=8, g=g, log=log)
    if fresh_context and hasattr(model.context, "set_channel_order"):
        with torch.no_grad():
            costs = y_bits(model, latents, noisy=False, use_context=False)
        model.context.set_channel_order(torch.argsort(costs, descending=True))
        log(f"channel order by hyperprior bits: {model.context.channel_order.tolist()}")
    val = validation_set(model, CropSampler(load_images(val_files), cfg.crop, cfg.seed + 1).batch(cfg.val_count))
    pixels = cfg.crop * cfg.crop * cfg.batch
    val_path = out / "val.csv"

    def save() -> None:
        atomic_save({"step": step, "config": asdict(cfg), "model_config": model.config.to_dict(),
                      "model": model.state_dict(), "optimizer": optimizer.state_dict()}, ckpt_path)

    last_save = time.time()
    stop = StopRequest()  # SIGTERM / Ctrl-C: checkpoint, then stop
    try:
        while step < cfg.steps and not stop.requested:
            idx = torch.randint(latents.y_s.shape[0], (cfg.batch,), generator=g)
            loss = y_bits(model, latents.select(idx), noisy=True).sum() / pixels
            if not torch.isfinite(loss):
                raise RuntimeError(f"context training diverged at step {step} (non-finite loss)")
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.context.parameters(), cfg.clip)
            optimizer.step()
            step += 1
            if step % cfg.log_every == 0:
                log(f"step {step} y bpp {loss.item():.4f}")
            if (cfg.val_every and step % cfg.val_every == 0) or step == cfg.steps:
                rows = validate(model, val)
                append_csv(val_path, [{"step": step, **r} for r in rows])
                saving = sum(r["y_saving"] for r in rows) / len(rows)
                log(f"val step {step}: y bits saved {100 * saving:.2f}% (mean of {len(rows)} conditions)")
            if time.time() - last_save > cfg.ckpt_minutes * 60:
                save()
                last_save = time.time()
    finally:
        stop.restore()
    save()
    return out

