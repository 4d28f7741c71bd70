"""results.csv, summary.json and the plots from the cached rows (schema in docs/bench.md)."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import platform
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .cache import Cache, codec_fingerprint, ref_key, row_key
from .config import BenchConfig
from .metrics import bd_rate, interp_at_bpp, msssim_db
from .protocol import crop_groups

if TYPE_CHECKING:
    import torch

    from odic.codecs import BenchCodec

SCHEMA = "odic-bench/1"
#: The codec every BD-rate is measured against; the sweep always adds it (docs/bench.md).
REFERENCE_CODEC = "hevc-raw"
BASE_COLUMNS = ["dataset", "image", "codec", "codec_name", "setting", "crop", "width", "height", "bytes",
                "header_bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "peak_mem_mb", "label"]
HUMAN_METRICS = ["bytes", "header_bytes", "psnr", "ms_ssim", "encode_s", "decode_s", "peak_mem_mb"]
NOTES = [
    "bpp = bytes of the whole file x 8 / pixels of the image that was compressed (the crop under the "
    "classification protocol); containers and headers count.",
    "hevc-raw is x265 HEVC without the HEIF container (parameter sets + slices + 5-byte header), "
    "about what BPG stores; it is the BD-rate reference at 4:4:4.",
    "at_bpp values are linear in log(bpp) between measured settings and null outside the measured range.",
    "imagenet-sample holds images an ImageNet classifier has probably seen in training, so absolute "
    "accuracies run high: compare codecs against the uncompressed reference on the same images.",
]


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def _curve(rows: list[dict[str, Any]], clf_rows: dict[str, list[dict[str, Any]]],
           labelled: bool) -> list[dict[str, Any]]:
    """Mean over images for each setting: bpp and every metric (classifiers on their own crops)."""
    by_setting: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_setting[r["setting"]].append(r)
    clf_by_setting = {clf: defaultdict(list) for clf in clf_rows}
    for clf, rs in clf_rows.items():
        for r in rs:
            clf_by_setting[clf][r["setting"]].append(r)
    curve = []
    for s in sorted(by_setting):
        rs = by_setting[s]
        entry: dict[str, Any] = {"setting": s, "n_images": len(rs), "bpp": _mean([r["bpp"] for r in rs])}
        for m in HUMAN_METRICS:
            entry[m] = _mean([r.get(m) for r in rs])
        for clf in clf_rows:
            crs = clf_by_setting[clf].get(s, [])
            entry[f"bpp/{clf}"] = _mean([r["bpp"] for r in crs])
            kinds = ("top1", "top5", "agree") if labelled else ("agree",)
            for k in kinds:
                entry[f"{k}/{clf}"] = _mean([r.get(f"{k}/{clf}") for r in crs])
        curve.append(entry)
    return sorted(curve, key=lambda e: e["bpp"] or 0.0)


def _at_bpp(curve: list[dict[str, Any]], targets: tuple[float, ...]) -> dict[str, dict[str, float | None]]:
    metrics = [k for k in curve[0] if k not in ("setting", "n_images", "bpp") and not k.startswith("bpp/")]
    out: dict[str, dict[str, float | None]] = {f"{t:g}": {} for t in targets}
    for m in metrics:
        rate_key = f"bpp/{m.split('/', 1)[1]}" if "/" in m else "bpp"
        vals = interp_at_bpp([e[rate_key] or 0.0 for e in curve], [e[m] for e in curve], targets)
        for t, v in zip(targets, vals, strict=True):
            out[f"{t:g}"][m] = v
    return out


def summarise(cfg: BenchConfig, codecs: dict[str, BenchCodec], skipped: dict[str, str],
              observers: dict[str, torch.nn.Module], cache: Cache, world: int) -> tuple[dict[str, Any], list]:
    """Build summary.json's dict and the list of result rows of this configuration."""
    all_rows: list[dict[str, Any]] = []
    datasets: dict[str, Any] = {}
    for ds in cfg.datasets:
        items = ds.items[: cfg.limit] if cfg.limit else ds.items
        groups = crop_groups(ds, observers)
        crops = {clf: crop for crop, clfs in groups.items() for clf in clfs}
        primary = next(iter(groups))
        ds_rows: dict[tuple[str, int | None], list[dict[str, Any]]] = defaultdict(list)
        for item in items:
            for crop in groups:
                for label, codec in codecs.items():
                    fp = codec_fingerprint(codec)
                    for s in codec.settings:
                        r = cache.row(row_key(ds.name, item.key, label, s, crop), fp)
                        if r is not None:
                            ds_rows[(label, crop)].append(r)
                            all_rows.append(r)
        reference = {}
        for clf, crop in crops.items():
            refs = [cache.refs.get(ref_key(ds.name, it.key, clf, crop)) for it in items]
            refs = [r for r in refs if r is not None]
            lab = [r for r in refs if r.get("label") is not None]
            reference[clf] = {
                "crop_size": crop, "input_size": observers[clf].spec.input_size, "n_images": len(refs),
                "top1": _mean([float(r["top5"][0] == r["label"]) for r in lab]) if ds.labelled else None,
                "top5": _mean([float(r["label"] in r["top5"]) for r in lab]) if ds.labelled else None,
                "agree": 1.0,
            }
        per_codec: dict[str, Any] = {}
        for label in codecs:
            rows = ds_rows.get((label, primary), [])
            if not rows:
                continue
            clf_rows = {clf: ds_rows.get((label, crop), []) for clf, crop in crops.items()}
            curve = _curve(rows, clf_rows, ds.labelled)
            per_codec[label] = {"curve": curve, "at_bpp": _at_bpp(curve, cfg.at_bpp)}
        ref = per_codec.get(REFERENCE_CODEC)
        for entry in per_codec.values():
            bd: dict[str, Any] = {"reference": REFERENCE_CODEC, "ms_ssim": None, "psnr": None}
            if ref is not None:
                rb = [e["bpp"] for e in ref["curve"]]
                tb = [e["bpp"] for e in entry["curve"]]
                bd["ms_ssim"] = bd_rate(rb, [msssim_db(e["ms_ssim"]) for e in ref["curve"]],
                                        tb, [msssim_db(e["ms_ssim"]) for e in entry["curve"]])
                bd["psnr"] = bd_rate(rb, [e["psnr"] for e in ref["curve"]],
                                     tb, [e["psnr"] for e in entry["curve"]])
            entry["bd_rate"] = bd
        datasets[ds.name] = {
            "source": ds.source, "layout": ds.layout, "labelled": ds.labelled, "classified": ds.classify,
            "n_images": len(items), "primary_crop": primary, "crops": crops, "reference": reference,
            "codecs": per_codec,
        }
    summary = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": cfg.command,
        "odic_version": _odic_version(),
        "platform": {"python": platform.python_version(), "machine": platform.machine(),
                     "system": platform.system()},
        "seed": cfg.seed, "threads": cfg.threads, "world_size": world, "limit": cfg.limit,
        "at_bpp_targets": list(cfg.at_bpp),
        "reference_codec": REFERENCE_CODEC,
        "protocol": {
            "human_only_datasets": "whole image compressed; PSNR/MS-SSIM on RGB",
            "classification": "resize shorter side to crop_size = ceil16(input)+32 (bilinear), centre-crop, "
                              "compress, decode, centre-crop input_size, classify",
            "ms_ssim": "pytorch-msssim, RGB, data_range 1, window odic.losses.msssim_window",
            "bd_rate": ("Bjontegaard, PCHIP of log-rate vs quality over the shared quality interval (null under 25% "
                        "overlap); MS-SSIM in dB (-10 log10(1-x))"),
        },
        "codecs": {label: codec.info() for label, codec in codecs.items()},
        "odic_model_ids": {label: c.model_id for label, c in codecs.items() if hasattr(c, "model_id")},
        "skipped_codecs": skipped,
        "classifiers": {n: {"input_size": o.spec.input_size, "crop_size": o.spec.crop_size}
                        for n, o in observers.items()},
        "notes": NOTES,
        "datasets": datasets,
    }
    return summary, all_rows


def _odic_version() -> str:
    try:
        from odic.version import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


def write_results_csv(rows: list[dict[str, Any]], path: Path) -> None:
    extra = sorted({k for r in rows for k in r if k not in BASE_COLUMNS and k not in ("key", "codec_id")
                    and not k.startswith("pred/")})
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=BASE_COLUMNS + extra, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in BASE_COLUMNS + extra})


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_outputs(cfg: BenchConfig, codecs: dict[str, BenchCodec], skipped: dict[str, str],
                  observers: dict[str, torch.nn.Module], cache: Cache, world: int) -> dict[str, Any]:
    """Write results.csv, summary.json and plots into ``cfg.out``; return the summary."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    summary, rows = summarise(cfg, codecs, skipped, observers, cache, world)
    summary = _json_safe(summary)
    write_results_csv(rows, out / "results.csv")
    with open(out / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    if cfg.plots:
        from .plots import write_plots

        summary["plots"] = write_plots(summary, out / "plots")
        with open(out / "summary.json", "w") as fh:
            json.dump(summary, fh, indent=1)
    return summary


def at_bpp_markdown(summary: dict[str, Any], metrics: list[str] | None = None) -> str:
    """The at_bpp tables of a summary as Markdown (one table per dataset), for docs and reports.

    Rows: codec x metric (default: MS-SSIM, PSNR and, per classifier, top-1 or agreement);
    columns: the at_bpp rates; then a BD-rate table. ``-`` = rate not reached.
    """
    lines: list[str] = []
    for ds_name, ds in summary["datasets"].items():
        kind = "top1" if ds["labelled"] else "agree"
        cols = metrics or (["ms_ssim", "psnr"] + [f"{kind}/{c}" for c in ds["crops"]])
        rates = [f"{t:g}" for t in summary["at_bpp_targets"]]
        where = f"{ds['primary_crop']} px crops" if ds["primary_crop"] else "whole images"
        lines += [f"**{ds_name}** ({ds['n_images']} images; human metrics on {where})", ""]
        if ds["crops"]:
            refs = ", ".join(
                f"{c}: top-1 {_pct(r['top1'])}, top-5 {_pct(r['top5'])} ({r['crop_size']} px crop)"
                for c, r in ds["reference"].items()
            ) if ds["labelled"] else "agreement 100% by definition"
            lines += [f"Uncompressed reference: {refs}.", ""]
        lines += ["| codec | metric | " + " | ".join(f"{r} bpp" for r in rates) + " |",
                  "|---|---|" + "---:|" * len(rates)]
        for m in cols:
            for label, entry in ds["codecs"].items():
                cells = [_fmt_metric(m, entry["at_bpp"][r].get(m)) for r in rates]
                lines.append(f"| {label} | {m} | " + " | ".join(cells) + " |")
        lines += ["", f"BD-rate against {summary['reference_codec']} (negative = fewer bits):", "",
                  "| codec | MS-SSIM | PSNR |", "|---|---:|---:|"]
        for label, entry in ds["codecs"].items():
            bd = entry["bd_rate"]
            lines.append(f"| {label} | {_fmt_pct_signed(bd['ms_ssim'])} | {_fmt_pct_signed(bd['psnr'])} |")
        lines.append("")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _fmt_pct_signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}%"


def _fmt_metric(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    if metric == "psnr":
        return f"{v:.2f}"
    if metric == "ms_ssim":
        return f"{v:.4f}"
    if "/" in metric:
        return _pct(v)
    return f"{v:.4g}"
