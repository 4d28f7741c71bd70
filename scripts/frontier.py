"""The observer trade-off at one rate: MS-SSIM on a human dataset vs top-1 on a labelled one.

    .venv/bin/python scripts/frontier.py results/odic/summary.json results/classical/summary.json \
        --bpp 0.25 --classifier efficientnet_lite0 -o docs/results/frontier

Each codec is a point (values interpolated at --bpp on log-bpp by odic bench); odic's observer
settings (odic:alpha=...) are joined by a line in order of alpha, one line per encoder (the fast
one, and each refine=... setting benched). Missing values are left out. --human and --labelled may
name the same dataset (MS-SSIM and top-1 on the same crops).
"""

from __future__ import annotations

import argparse
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from odic.report import observer_series  # noqa: E402


def collect(paths, human, labelled, bpp_key, clf):
    points = {}
    for p in paths:
        s = json.load(open(p))
        hum = s["datasets"].get(human, {}).get("codecs", {})
        lab = s["datasets"].get(labelled, {}).get("codecs", {})
        for label in set(hum) | set(lab):
            x = hum.get(label, {}).get("at_bpp", {}).get(bpp_key, {}).get("ms_ssim")
            y = lab.get(label, {}).get("at_bpp", {}).get(bpp_key, {}).get(f"top1/{clf}")
            old_x, old_y = points.get(label, (None, None))  # datasets may come from different runs
            points[label] = (x if x is not None else old_x, y if y is not None else old_y)
        ref = s["datasets"].get(labelled, {}).get("reference", {}).get(clf, {}).get("top1")
        if ref is not None:
            points["_reference"] = (None, ref)
    return points


def odic_series(points: dict) -> dict[str, list]:
    """odic's points grouped by their options other than alpha (and the weights file), in order of alpha.

    The fast encoder's settings form the frontier; refined settings (``refine=...``) become their own
    series, so one plot shows what the slower encoders buy at each end.
    """
    series: dict[str, list] = {}
    for label, xy in points.items():
        if not label.startswith("odic") or "alpha=" not in label or None in xy:
            continue
        alpha = float(re.search(r"alpha=([\d.]+)", label).group(1))
        series.setdefault(observer_series(label, ignore=("alpha", "model")), []).append((alpha, xy))
    return {name: sorted(pts) for name, pts in series.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("summaries", nargs="+")
    ap.add_argument("--human", default="kodak")
    ap.add_argument("--labelled", default="imagenet")
    ap.add_argument("--bpp", default="0.25")
    ap.add_argument("--classifier", default="efficientnet_lite0")
    ap.add_argument("-o", "--out", default="frontier")
    args = ap.parse_args()
    pts = collect(args.summaries, args.human, args.labelled, args.bpp, args.classifier)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    all_series = odic_series(pts)
    for i, (name, odic) in enumerate(sorted(all_series.items())):
        style = ("o-", "C3") if name == "odic" else ("D--", f"C{4 + i}")
        label = name.replace("odic:", "odic, ").replace(":", ", ")
        if name == "odic":
            label = "odic (one model)" if len(all_series) == 1 else "odic, fast encoder"
        ax.plot([v[0] for _, v in odic], [v[1] for _, v in odic], style[0], color=style[1], label=label)
        for a, v in odic:
            ax.annotate(f"α={a:g}", v, textcoords="offset points", xytext=(4, 4), fontsize=8)
    for k, v in sorted(pts.items()):
        if k.startswith(("odic", "_")) or None in v:
            continue
        ax.plot(*v, "s", label=k)
    if "_reference" in pts:
        ax.axhline(pts["_reference"][1], color="gray", ls="--", lw=1, label="uncompressed top-1")
    ax.set_xlabel(f"MS-SSIM on {args.human} at {args.bpp} bpp")
    ax.set_ylabel(f"top-1 ({args.classifier}) on {args.labelled} at {args.bpp} bpp")
    ax.set_title("Observer trade-off: human vs machine quality at one rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{args.out}.{ext}", dpi=110)
    print(json.dumps({k: v for k, v in pts.items()}, indent=1))


if __name__ == "__main__":
    main()
