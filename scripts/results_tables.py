"""Markdown tables for docs/results.md from the summaries that scripts/eval_release.sh writes.

    .venv/bin/python scripts/results_tables.py results/odic-kodak/summary.json \
        results/odic-imagenet/summary.json results/odic-imagenet-unseen/summary.json

Values are odic bench's ``at_bpp`` (linear in log-bpp between measured settings; "-" outside the
measured range), so the tables and the plots come from the same numbers.
"""

from __future__ import annotations

import argparse
import json

BPPS = ("0.125", "0.25", "0.5")


def _fmt(v, kind: str) -> str:
    if v is None:
        return "-"
    return {"msssim": f"{v:.4f}", "msssim3": f"{v:.3f}", "psnr": f"{v:.2f} dB", "top1": f"{100 * v:.1f}%"}[kind]


def kodak_table(summary: dict, dataset: str = "kodak") -> str:
    codecs = summary["datasets"][dataset]["codecs"]
    rows = ["| codec | 0.125 bpp | 0.25 bpp | 0.5 bpp | BD-rate MS-SSIM vs hevc-raw |", "|---|---:|---:|---:|---:|"]
    for label, c in codecs.items():
        cells = []
        for b in BPPS:
            at = c.get("at_bpp", {}).get(b) or {}
            if at.get("ms_ssim") is None:
                cells.append("-")
            else:
                cells.append(f"{_fmt(at.get('ms_ssim'), 'msssim')} / {_fmt(at.get('psnr'), 'psnr')}")
        bd = (c.get("bd_rate") or {}).get("ms_ssim")
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {'-' if bd is None else f'{bd:+.1f}%'} |")
    return "\n".join(rows)


def imagenet_table(summary: dict, classifiers: list[str], dataset: str = "imagenet", human: bool = True) -> str:
    ds = summary["datasets"][dataset]
    head = "| codec |" + (" MS-SSIM 0.125 / 0.25 / 0.5 bpp |" if human else "")
    head += "".join(f" {c} top-1 0.125 / 0.25 / 0.5 bpp |" for c in classifiers)
    rows = [head, "|---|" + ("---|" if human else "") + "---|" * len(classifiers)]
    for label, c in ds["codecs"].items():
        at = c.get("at_bpp", {})
        cells = []
        if human:
            cells.append(" / ".join(_fmt((at.get(b) or {}).get("ms_ssim"), "msssim3") for b in BPPS))
        for clf in classifiers:
            cells.append(" / ".join(_fmt((at.get(b) or {}).get(f"top1/{clf}"), "top1") for b in BPPS))
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    ref = "; ".join(f"{k} {100 * v['top1']:.1f}%" for k, v in ds.get("reference", {}).items() if k in classifiers)
    return "\n".join(rows) + f"\n\nUncompressed top-1 on these {ds['n_images']} images: {ref}."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kodak")
    ap.add_argument("imagenet")
    ap.add_argument("unseen")
    args = ap.parse_args()
    print(kodak_table(json.load(open(args.kodak))), end="\n\n")
    print(imagenet_table(json.load(open(args.imagenet)), ["efficientnet_lite0"]), end="\n\n")
    print(imagenet_table(json.load(open(args.unseen)), ["efficientnet_lite1", "efficientnet_lite2"], human=False))


if __name__ == "__main__":
    main()
