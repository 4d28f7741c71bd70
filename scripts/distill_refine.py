"""Distil encoder refinement into the fast encoder: an experiment for issue 33.

Why: refinement (``odic.refine``) finds latents that the default decoder turns into images the
classifiers read almost as well as the originals, while the fast encoder loses 12-20 points of
top-1. If one network can learn to guess those latents, the fast encoder gains that much and
every stream still decodes with the same decoder (only encoder tensors change).

Two steps, both resumable:

* ``targets``: random 256 px training crops, refined for the machine observer at random
  qualities; each (crop, quality, refined latents) is appended to RUN_DIR/targets-*.pt.
  Costs one refinement per crop (13-15 s at refine=50 on one AMD EPYC core).
* ``fit``: trains only the encoder (``OdicModel.ENCODER_MODULES``) to output the refined
  latents, and keeps it at its old output at other conditions (random quality, human observer).
  Each evaluation reports, on held-out crops (photos never used for fitting), the refinement
  objective ``lambda * D + bpp`` (rounded latents), bpp and classifier agreement for the old
  encoder, the fitted one and the refined latents themselves, and writes RUN_DIR/fitted.pt, a
  weights file with the start's decoder (``odic bench --codecs "odic:...:model=RUN_DIR/fitted.pt"``).

    python scripts/distill_refine.py targets --out runs/distill --seed 1 --count 200
    python scripts/distill_refine.py fit --out runs/distill --steps 2000
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from odic.bitstream import ALPHA_CODE_MAX, QUALITY_CODE_MAX, quality_to_code
from odic.losses import observer_distortion, rate_bpp
from odic.model import lmbda_for
from odic.observers import create_observer
from odic.refine import MSE_WEIGHT, refine_latents
from odic.train.data import CropSampler, list_images, load_images
from odic.train.loop import freeze_decoder
from odic.train.precision import Precision
from odic.weights import build_model, export_weights, read_weights_file, resolve

DATA = ["../shared/data/train-hires", "../shared/data/train"]
#: Training's held-out validation photos (the last ones listed): never used here either.
TRAIN_VALIDATION = 24
CROP = 256


def load_model(weights: str):
    model, _ = build_model(read_weights_file(resolve(weights)))
    return model


def photos() -> list:
    return load_images(list_images(DATA)[:-TRAIN_VALIDATION])


def make_targets(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"targets-s{args.seed}.pt"
    rows = torch.load(path) if path.exists() else []
    model = load_model(args.weights)
    observer = create_observer(args.classifier, "cpu")
    images = photos()
    g = torch.Generator().manual_seed(args.seed)
    for _ in rows:  # replay the draws of the rows already made, so a resumed run continues the sequence
        _draw(g, len(images), args)
    while len(rows) < args.count:
        index, quality = _draw(g, len(images), args)
        sampler = CropSampler([images[index]], CROP, seed=int(torch.randint(1 << 30, (1,), generator=g)))
        x = sampler.batch(1)
        start = time.time()
        y, z = refine_latents(model, x, quality_to_code(quality), ALPHA_CODE_MAX, args.refine, observer)
        rows.append({"photo": index, "quality": quality, "x": (x[0] * 255).round().to(torch.uint8),
                     "y": y[0].clone(), "z": z[0].clone()})
        if len(rows) % args.save_every == 0 or len(rows) == args.count:
            torch.save(rows, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
        print(f"{len(rows)}/{args.count} photo {index} quality {quality:.1f} {time.time() - start:.1f} s", flush=True)


def _draw(g: torch.Generator, n: int, args) -> tuple[int, float]:
    index = int(torch.randint(n, (1,), generator=g))
    lo, hi = args.quality_range
    return index, lo + (hi - lo) * float(torch.rand((), generator=g))


def load_targets(out: Path, hold_out_every: int) -> tuple[list[dict], list[dict]]:
    """(crops to fit, held-out crops): crops of photos whose index is a multiple of ``hold_out_every``
    are held out, so the evaluation sees photos the fit never saw."""
    rows = [r for p in sorted(out.glob("targets-s*.pt")) for r in torch.load(p)]
    held = [r for r in rows if r["photo"] % hold_out_every == 0]
    return [r for r in rows if r["photo"] % hold_out_every != 0], held


def conditions(rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.tensor([quality_to_code(r["quality"]) / QUALITY_CODE_MAX for r in rows])
    return q, torch.ones(len(rows))


@torch.no_grad()
def evaluate(model, rows: list[dict], observer, latents) -> dict:
    """Mean objective, bpp, top-1 agreement of the rounded ``latents(x, q, a)`` over ``rows``, and
    their mean squared distance to the refined latents (the fit's loss)."""
    loss = bpp_sum = agree = distance = 0.0
    for r in rows:
        x = r["x"][None].float() / 255
        q, a = conditions([r])
        y, z = latents(x, q, a, r)
        distance += float((y[0] - r["y"]).pow(2).mean() + (z[0] - r["z"]).pow(2).mean())
        x_hat, likelihoods = model.decode_rounded(y, z, q, a)
        x_hat = x_hat.clamp(0, 1)
        bpp = rate_bpp(likelihoods, CROP * CROP)
        reference = observer(x, with_features=True)
        d = observer_distortion(x, x_hat, a, observer, mse_weight=MSE_WEIGHT, reference=reference)["d_alpha"]
        loss += float(lmbda_for(q, model.config) * d + bpp)
        bpp_sum += float(bpp)
        agree += float(observer(x_hat).argmax(1) == reference[0].argmax(1))
    n = len(rows)
    return {"objective": round(loss / n, 4), "bpp": round(bpp_sum / n, 4), "agree": round(agree / n, 3),
            "distance": round(distance / n, 4)}


def fit(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    train_rows, held = load_targets(out, args.hold_out_every)
    print(f"{len(train_rows)} crops to fit, {len(held)} held out", flush=True)
    model = load_model(args.weights)
    teacher = copy.deepcopy(model)  # the old encoder: what other conditions keep
    observer = create_observer(args.classifier, "cpu")
    opt = torch.optim.Adam(freeze_decoder(model), lr=args.lr)
    fast = lambda m: (lambda x, q, a, r: m.gained_latents(x, q, a))  # noqa: E731
    if args.baseline:
        for name, fn in (("old encoder", fast(teacher)),
                         ("refined", lambda x, q, a, r: (r["y"][None], r["z"][None]))):
            print(f"held out, {name}: {evaluate(teacher, held, observer, fn)}", flush=True)
    g = torch.Generator().manual_seed(args.seed)
    xs = torch.stack([r["x"] for r in train_rows])
    ys = torch.stack([r["y"] for r in train_rows])
    zs = torch.stack([r["z"] for r in train_rows])
    qs, alphas = conditions(train_rows)
    sampler = CropSampler(list(xs), args.keep_crop, seed=args.seed)
    precision = Precision(args.precision, torch.device("cpu"))
    precision.prepare(model)
    model.train()
    for step in range(1, args.steps + 1):
        i = torch.randint(len(train_rows), (args.batch,), generator=g)
        x = precision.batch(xs[i].float() / 255)
        with precision.autocast():
            y, z = model.gained_latents(x, qs[i], alphas[i])
        loss = (y.float() - ys[i]).pow(2).mean() + (z.float() - zs[i]).pow(2).mean()
        # elsewhere (other qualities, the human observer) the encoder stays what it was
        xk = precision.batch(sampler.batch(args.batch))
        qk = torch.rand(args.batch, generator=g)
        ak = torch.zeros(args.batch)
        with precision.autocast():
            yk, zk = model.gained_latents(xk, qk, ak)
        with torch.no_grad():
            yt, zt = teacher.gained_latents(xk, qk, ak)
        yk, zk = yk.float(), zk.float()
        keep = (yk - yt).pow(2).mean() + (zk - zt).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        (loss + args.keep_weight * keep).backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step} fit {loss.item():.4f} keep {keep.item():.4f}", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            print(f"step {step} held out, fitted: {evaluate(model, held, observer, fast(model))}", flush=True)
            # a weights file to bench (export rounds to fp16 in place: a copy); the decoder is checked
            # to be the start's, so its streams stay decodable
            export_weights(copy.deepcopy(model), args.fitted or out / "fitted.pt", f"odic-distill-{step}",
                           {"steps": step, "targets": len(train_rows)}, same_decoder_as=resolve(args.weights))
            model.train()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(required=True)
    t = sub.add_parser("targets")
    t.add_argument("--count", type=int, default=200)
    t.add_argument("--refine", type=int, default=50)
    t.add_argument("--quality-range", type=float, nargs=2, default=(25.0, 60.0))
    t.add_argument("--save-every", type=int, default=5)
    t.set_defaults(func=make_targets)
    f = sub.add_parser("fit")
    f.add_argument("--steps", type=int, default=2000)
    f.add_argument("--batch", type=int, default=8)
    f.add_argument("--lr", type=float, default=1e-5)
    f.add_argument("--keep-weight", type=float, default=1.0)
    f.add_argument("--keep-crop", type=int, default=128)
    f.add_argument("--eval-every", type=int, default=250)
    f.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                   help="the fitted encoder under bf16 autocast (odic.train.precision); evaluation in fp32")
    f.add_argument("--fitted", default=None, help="weights file to write (default: RUN_DIR/fitted.pt)")
    f.add_argument("--hold-out-every", type=int, default=7, help="photos held out: index a multiple of this")
    f.add_argument("--baseline", action="store_true", help="first evaluate the old encoder and the targets")
    f.set_defaults(func=fit)
    for s in (t, f):
        s.add_argument("--out", default="runs/distill")
        s.add_argument("--weights", default=None, help="model (default: the shipped default)")
        s.add_argument("--classifier", default="efficientnet_lite0")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
