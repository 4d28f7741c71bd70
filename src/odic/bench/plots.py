"""Rate-distortion and rate-accuracy plots (PNG and SVG) from summary.json's curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_STYLE = {"odic": "-", "hevc-raw": "--"}


def _plot_curves(ax, codecs: dict[str, Any], rate_key: str, metric: str) -> None:  # noqa: ANN001
    import matplotlib.pyplot as plt

    # Up to 20 distinct colours: ten classical codecs plus several odic observers stay apart.
    ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    for label, entry in codecs.items():
        pts = [(e.get(rate_key), e.get(metric)) for e in entry["curve"]]
        pts = [(b, v) for b, v in pts if b is not None and v is not None]
        if not pts:
            continue
        name = label.split(":", 1)[0]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], _STYLE.get(name, "-"), marker="o", ms=3,
                lw=2.0 if name == "odic" else 1.2, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.grid(True, which="both", alpha=0.3)


def write_plots(summary: dict[str, Any], folder: Path) -> list[str]:
    """One rate-distortion figure per dataset, one rate-accuracy figure per classified dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def save(fig, stem: str) -> None:  # noqa: ANN001
        for ext in ("png", "svg"):
            path = folder / f"{stem}.{ext}"
            fig.savefig(path, dpi=110 if ext == "png" else None, bbox_inches="tight")
            written.append(str(path))
        plt.close(fig)

    for ds_name, ds in summary["datasets"].items():
        codecs = ds["codecs"]
        if not codecs:
            continue
        crop = ds["primary_crop"]
        where = f"{crop}x{crop} crops" if crop else "whole images"
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, metric, title in ((axes[0], "psnr", "PSNR (dB, RGB)"), (axes[1], "ms_ssim", "MS-SSIM (RGB)")):
            _plot_curves(ax, codecs, "bpp", metric)
            ax.set_ylabel(title)
        axes[1].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"{ds_name}: rate-distortion ({ds['n_images']} images, {where})")
        save(fig, f"rd-{ds_name}")

        clfs = list(ds["crops"])
        if not clfs:
            continue
        kind = "top1" if ds["labelled"] else "agree"
        fig, axes = plt.subplots(1, len(clfs), figsize=(5.2 * len(clfs), 4.2), squeeze=False)
        for ax, clf in zip(axes[0], clfs, strict=True):
            _plot_curves(ax, codecs, f"bpp/{clf}", f"{kind}/{clf}")
            ref = ds["reference"][clf].get(kind)
            if ref is not None:
                ax.axhline(ref, color="k", ls=":", lw=1, label="uncompressed")
            ax.set_ylabel("top-1 accuracy" if kind == "top1" else "top-1 agreement with uncompressed")
            ax.set_title(f"{clf} ({ds['crops'][clf]} px crop)")
        axes[0][-1].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"{ds_name}: rate-accuracy ({ds['n_images']} images)")
        save(fig, f"accuracy-{ds_name}")
    return written
