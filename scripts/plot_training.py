"""Plot a run's training log and validation curve: scripts/plot_training.py runs/base -o docs/results/train."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args()
    run = Path(args.run)
    rows = list(csv.DictReader(open(run / "log.csv")))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    step = [int(r["step"]) for r in rows]
    for ax, key, label in ((axes[0], "loss", "loss = lambda(q) D_alpha + bpp"), (axes[1], "bpp", "bpp (estimated)"),
                           (axes[2], "d_human", "D_human (1-MS-SSIM [+10 MSE from step 2800])")):
        ax.plot(step, [float(r[key]) for r in rows], lw=0.8)
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[2].plot(step, [float(r["d_machine"]) for r in rows], lw=0.8, label="D_machine")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{args.out}-log.png", dpi=100)
    if (run / "val.csv").exists():
        val = list(csv.DictReader(open(run / "val.csv")))
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        for q, a in sorted({(r["q"], r["alpha"]) for r in val}):
            sel = [r for r in val if (r["q"], r["alpha"]) == (q, a)]
            s = [int(r["step"]) for r in sel]
            ax[0].plot(s, [float(r["msssim"]) for r in sel], "o-", label=f"q={q} a={a}")
            ax[1].plot(s, [float(r["top1_agree"] or 0) for r in sel], "o-", label=f"q={q} a={a}")
        ax[0].set_title("validation MS-SSIM", fontsize=9)
        ax[1].set_title("validation top-1 agreement (Lite0)", fontsize=9)
        for a_ in ax:
            a_.set_xlabel("step")
            a_.grid(alpha=0.3)
            a_.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(f"{args.out}-val.png", dpi=100)


if __name__ == "__main__":
    main()
