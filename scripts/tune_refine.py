"""Compare refinement step sizes and schedules on training photos (never the benchmark images).

Reports, per setting, the mean estimated loss ``lambda * D + bpp`` of the kept latents relative to
the network's own (lower is better), the estimated bpp and the time per image. With ``--agree``,
also how often classifiers that refinement never uses (crops at their bench size) give the same
top-1 class for the reconstruction as for the original, and the mean KL divergence of their
predictions (less noisy than agreement on few images): a label-free proxy for the benchmark's
"unseen observers". A setting is ``steps[:lr[:final_lr[:shift[:alpha]]]]``; a missing or ``-``
field keeps odic.refine's default (so a constant step size is ``20:0.005:0.005``, no views ``:0``).
Usage:
  .venv/bin/python scripts/tune_refine.py --alpha 1 --quality 25 --images 8 --crop 256
  .venv/bin/python scripts/tune_refine.py --agree efficientnet_lite1 --images 24 \
      --settings "0,20,20:0.005:0.005:0,20:-:-:16"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import odic
from odic.api import _pad, observer_to_code, quality_to_code
from odic.losses import observer_distortion, rate_bpp
from odic.model import lmbda_for
from odic.observers import create_observer, get_spec
from odic.refine import DEFAULT_SHIFT, MSE_WEIGHT, refine_latents


def crops(root: Path, n: int, size: int) -> list[torch.Tensor]:
    out = []
    for path in sorted(root.iterdir())[::37][:n]:
        img = Image.open(path).convert("RGB")
        scale = size / min(img.size)
        img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.BICUBIC)
        left, top = (img.width - size) // 2, (img.height - size) // 2
        arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
        out.append(torch.from_numpy(arr).permute(2, 0, 1)[None])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--quality", type=float, default=25)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--settings", default="20,50,20:0.005:0.005:0,20:0.02:0.001:0,20:0.04:0.002")
    ap.add_argument("--agree", default="", help="comma-separated classifiers to check top-1 agreement with")
    args = ap.parse_args()
    torch.set_num_threads(2)
    codec = odic.load()
    model = codec.model
    observer = create_observer("efficientnet_lite0")
    qc = quality_to_code(args.quality)
    judges = {name: create_observer(name) for name in filter(None, args.agree.split(","))}
    sizes: dict[int, list[str]] = {} if judges else {args.crop: []}
    for name in judges:
        sizes.setdefault(get_spec(name).crop_size, []).append(name)
    sets = {size: crops(Path(args.data), args.images, size) for size in sizes}
    for setting in args.settings.split(","):
        parts = [p if p != "-" else None for p in setting.split(":")] + [None] * 5
        steps, lr = int(parts[0]), float(parts[1]) if parts[1] else None
        final = float(parts[2]) if parts[2] else None
        shift = int(parts[3]) if parts[3] else DEFAULT_SHIFT
        alpha = float(parts[4]) if parts[4] else args.alpha
        ac = observer_to_code(alpha)
        for size, xs in sets.items():
            ratios, bpps, agree, t0 = [], [], {n: [] for n in judges}, time.perf_counter()
            for x in xs:
                xp, valid = _pad(x), x.shape[-2:]
                base, _, _ = _estimate(model, x, *refine_latents(model, xp, qc, ac, 0), qc, ac, observer)
                y, z = refine_latents(model, xp, qc, ac, steps, observer, valid=valid, lr=lr, final_lr=final,
                                      shift=shift)
                loss, bpp, x_hat = _estimate(model, x, y, z, qc, ac, observer)
                ratios.append(loss / base)
                bpps.append(bpp)
                for name, judge in judges.items():
                    if name in sizes[size]:
                        n = get_spec(name).input_size
                        with torch.no_grad():
                            p = judge(_centre(x, n)).log_softmax(1)
                            r = judge(_centre(x_hat.clamp(0, 1), n)).log_softmax(1)
                        agree[name].append((float(p.argmax(1) == r.argmax(1)), float((p.exp() * (p - r)).sum())))
            dt = (time.perf_counter() - t0) / len(xs)
            extra = "".join(f", {n} agrees {100 * np.mean([a for a, _ in v]):.1f}% "
                            f"(KL {np.mean([k for _, k in v]):.3f})" for n, v in agree.items() if v)
            print(f"{size}px steps={steps} lr={lr} final={final} shift={shift} alpha={alpha}: loss ratio "
                  f"{np.mean(ratios):.4f}, bpp {np.mean(bpps):.3f}{extra}, {dt:.2f} s/image", flush=True)


def _centre(x: torch.Tensor, n: int) -> torch.Tensor:
    """The central n x n square, as the bench's classify step takes it."""
    h, w = x.shape[-2:]
    top, left = (h - n) // 2, (w - n) // 2
    return x[..., top:top + n, left:left + n]


@torch.no_grad()
def _estimate(model, x, y, z, qc, ac, observer) -> tuple[float, float, torch.Tensor]:
    """(lambda * D + bpp, bpp, reconstruction) at the rounded latents, as refinement scores them."""
    q, a = model.condition_tensors(qc, ac, 1, x.device)
    medians = model.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
    z_hat = torch.round(z - medians) + medians
    _, z_lik = model.entropy_bottleneck(z_hat, training=False)
    scales, means = model.h_s(z_hat * model.inv_hyper_gain(q, a))
    y_hat = torch.round(y - means) + means
    _, y_lik = model.gaussian_conditional(y_hat, scales, means, training=False)
    x_hat = model.g_s(y_hat * model.inv_gain(q, a), model.embed(q, a))[..., : x.shape[-2], : x.shape[-1]]
    bpp = rate_bpp({"y": y_lik, "z": z_lik}, x.shape[-2] * x.shape[-1])
    d = observer_distortion(x, x_hat, a, observer, mse_weight=MSE_WEIGHT)["d_alpha"]
    return float((lmbda_for(q, model.config) * d + bpp).sum()), float(bpp.sum()), x_hat


if __name__ == "__main__":
    main()
