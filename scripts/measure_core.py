"""Issue-2 measurements on Kodak with the bundled model (writes JSON to stdout and --out).

* encode/decode wall time per 768x512 image, odic vs pillow-heif HEVC 4:4:4 at a similar bpp
  (same process, same thread count);
* stream bytes vs the model's estimated bits (-sum log2 p of the rounded latents): overhead in %;
* mean bpp and MS-SSIM for observer 0 and 1 at three qualities.

    .venv/bin/python scripts/measure_core.py --data ../shared/data/kodak --threads 2 --out results/core.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import odic
from odic.bench.metrics import msssim
from odic.codecs import create_codec
from odic.losses import rate_bpp


def estimated_bits(codec, img: Image.Image, quality: float, observer: float) -> float:
    x = odic.imageio.to_tensor(np.asarray(img.convert("RGB")).copy())
    x = odic.api._pad(x)
    m = codec.model
    q, a = m.condition_tensors(int(round(quality * 100)), int(round(observer * 1000)), 1, "cpu")
    with torch.no_grad():
        out = m(x, q, a)  # eval mode: rounding, not noise
    return float(rate_bpp(out["likelihoods"], 1).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/kodak")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--qualities", type=float, nargs="+", default=[20.0, 50.0, 80.0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    codec = odic.load()
    hevc = create_codec("hevc-raw")
    files = sorted(Path(args.data).glob("*.png"))[: args.limit]
    rows = []
    for f in files:
        img = Image.open(f).convert("RGB")
        npx = img.width * img.height
        for obs in (0.0, 1.0):
            for qual in args.qualities:
                t = time.perf_counter()
                data = codec.compress(img, quality=qual, observer=obs)
                t_enc = time.perf_counter() - t
                t = time.perf_counter()
                dec = codec.decompress(data)
                t_dec = time.perf_counter() - t
                est = estimated_bits(codec, img, qual, obs)
                rows.append({
                    "file": f.name, "codec": "odic", "observer": obs, "quality": qual,
                    "bpp": len(data) * 8 / npx, "est_bpp": est / npx,
                    "overhead_pct": 100 * (len(data) * 8 - est) / est,
                    "msssim": msssim(img, dec.convert("RGB")),
                    "enc_s": t_enc, "dec_s": t_dec,
                })
        # HEVC at about the bpp of odic's middle quality for the human observer
        target = [r for r in rows if r["file"] == f.name and r["observer"] == 0.0][len(args.qualities) // 2]["bpp"]
        best = None
        for s in hevc.settings:
            d = hevc.encode(img, s)
            if best is None or abs(len(d) * 8 / npx - target) < abs(best[1] - target):
                best = (s, len(d) * 8 / npx)
        t = time.perf_counter()
        d = hevc.encode(img, best[0])
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        dec = hevc.decode(d)
        t_dec = time.perf_counter() - t
        rows.append({"file": f.name, "codec": "hevc-raw-444", "setting": best[0], "bpp": len(d) * 8 / npx,
                     "msssim": msssim(img, dec.convert("RGB")),
                     "enc_s": t_enc, "dec_s": t_dec})
        print(f"{f.name} done", flush=True)

    summary = {"model_id": codec.model_id, "threads": args.threads, "images": len(files), "odic": [], "hevc": {}}
    for obs in (0.0, 1.0):
        for qual in args.qualities:
            sel = [r for r in rows if r["codec"] == "odic" and r["observer"] == obs and r["quality"] == qual]
            summary["odic"].append({k: float(np.mean([r[k] for r in sel])) for k in
                                    ("bpp", "est_bpp", "overhead_pct", "msssim", "enc_s", "dec_s")}
                                   | {"observer": obs, "quality": qual})
    sel = [r for r in rows if r["codec"] == "hevc-raw-444"]
    summary["hevc"] = {k: float(np.mean([r[k] for r in sel])) for k in ("bpp", "msssim", "enc_s", "dec_s")}
    text = json.dumps({"summary": summary, "rows": rows}, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
