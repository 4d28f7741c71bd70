"""odic's measured Kodak curves beside the published anchors in ../shared/anchors/compressai-kodak.

    .venv/bin/python scripts/plot_anchors.py results/odic-kodak/summary.json -o docs/results/kodak-anchors

MS-SSIM in dB (-10 log10(1 - MS-SSIM), as CompressAI plots it) and PSNR against bpp. Solid lines:
measured here by ``odic bench`` (odic settings and classical codecs); dashed: published curves
(BPG 4:4:4, VTM, and CompressAI's MS-SSIM-trained hyperprior models), read from their JSON files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ANCHORS = {  # file: (label, colour); measured curves use C0-C6
    "bpg_444_x265_ycbcr.json": ("BPG 4:4:4 (published)", "gray"),
    "vtm.json": ("VTM (published)", "black"),
    "compressai-bmshj2018-hyperprior_ms-ssim.json": ("bmshj2018-hyperprior, MS-SSIM (published)", "C8"),
    "compressai-mbt2018-mean_ms-ssim.json": ("mbt2018-mean, MS-SSIM (published)", "C9"),
}


def db(v: float) -> float:
    return -10 * math.log10(max(1 - v, 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("summary")
    ap.add_argument("--dataset", default="kodak")
    ap.add_argument("--anchors", default=os.environ.get("ODIC_ANCHORS", "../shared/anchors") + "/compressai-kodak")
    ap.add_argument("--max-bpp", type=float, default=1.2)
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    codecs = json.load(open(args.summary))["datasets"][args.dataset]["codecs"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, metric, key, conv in ((axes[0], "MS-SSIM (dB)", "ms_ssim", db), (axes[1], "PSNR (dB)", "psnr", float)):
        for i, (label, entry) in enumerate(sorted(codecs.items())):
            pts = [(e["bpp"], conv(e[key])) for e in entry["curve"] if e.get(key) is not None]
            pts = [p for p in pts if p[0] <= args.max_bpp]
            style = dict(lw=2.2, color="C3") if label == "odic:alpha=0" else dict(lw=1.4, color=f"C{i % 7}")
            ax.plot(*zip(*pts, strict=True), "o-", ms=3, label=f"{label} (measured)", **style)
        for name, (label, colour) in ANCHORS.items():
            path = Path(args.anchors) / name
            if not path.exists():
                continue
            res = json.load(open(path))["results"]
            values = res["ms-ssim-rgb"] if key == "ms_ssim" else res["psnr-rgb"]
            pts = [(b, conv(v)) for b, v in zip(res["bpp"], values, strict=True) if b <= args.max_bpp]
            ax.plot(*zip(*pts, strict=True), "--", lw=1, color=colour, label=label)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{args.dataset}: MS-SSIM")
    axes[1].set_title(f"{args.dataset}: PSNR")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{args.out}.{ext}", dpi=110)


if __name__ == "__main__":
    main()
