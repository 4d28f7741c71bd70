"""One self-contained HTML page from an ``odic bench`` results folder.

Why one file: a report is mailed, attached to an issue or opened offline, so every plot and image
is embedded (base64 PNG) and the page loads nothing else and runs no script.

It reads ``summary.json`` (required; schema in docs/bench.md), ``results.csv`` (optional: speed
table) and, for the side-by-side crops, the dataset images named in the summary (skipped with a
note when they are gone). Crops are compressed anew at one target bpp by odic (human and machine
observer), HEVC and JPEG, and classified with the bench's first classifier (top-5 under each).

    from odic.report import write_report
    write_report("results/demo", "report.html")
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from .options import OBSERVER_NAMES

#: bpp of the side-by-side crops unless asked otherwise.
DEFAULT_CROP_BPP = 0.25
#: Crop shown for datasets without a classifier (the bench compressed whole images there).
HUMAN_CROP = 256

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:1em 2em;color:#1d1d1f;background:#fff}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}.meta{color:#555}.note{color:#666;font-size:.92em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f4f4f6}
td.l,th.l{text-align:left}td.best{font-weight:700;background:#eaf6ea}td.na{color:#aaa}
img.plot{max-width:100%;height:auto;border:1px solid #eee}
.crops{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:1.5em}
.crop{width:260px;font-size:.82em}.crop img{width:256px;height:256px;image-rendering:pixelated;
border:1px solid #ccc}.crop .t{font-weight:600;font-size:1.05em}.crop ol{margin:.2em 0;padding-left:1.6em}
.crop li.ref{color:#0a6b0a;font-weight:600}.crop .miss{width:256px;height:256px;display:flex;
align-items:center;justify-content:center;background:#f4f4f6;color:#777;text-align:center;border:1px solid #ccc}
code{background:#f4f4f6;padding:0 3px}
"""


class ReportError(ValueError):
    """The results folder cannot make a report (message fits on one line)."""


# ----------------------------------------------------------------------------- inputs


def class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order (shipped with the package)."""
    text = resources.files("odic").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return [line.split(" ", 1)[1].replace("_", " ") for line in text.splitlines() if line.strip()]


def load_summary(results_dir: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``summary.json``; ReportError with one line when it cannot be used."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ReportError(f"{root} is not a folder (give the --out folder of odic bench)")
    path = root / "summary.json"
    if not path.is_file():
        raise ReportError(f"{path} not found (run odic bench --out {root} first)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("datasets"), dict):
        raise ReportError(f"{path} is not an odic bench summary (no 'datasets' object)")
    return summary


def load_results_csv(results_dir: str | Path) -> list[dict[str, str]]:
    """Rows of ``results.csv`` as strings ([] when the file is absent or unreadable)."""
    path = Path(results_dir) / "results.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


# ----------------------------------------------------------------------------- helpers


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(metric: str, value: Any) -> str:
    v = _num(value)
    if v is None:
        return "–"
    if metric.startswith(("top1", "top5", "agree")):
        return f"{100 * v:.1f}%"
    if metric == "ms_ssim":
        return f"{v:.4f}"
    if metric in ("psnr", "bd_ms_ssim", "bd_psnr"):
        return f"{v:.2f}" if metric == "psnr" else f"{v:+.1f}%"
    if metric.endswith("_s"):
        return f"{1000 * v:.1f} ms"
    return f"{v:.3g}"


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return _png_data_uri(buf.getvalue())


def _figure_uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return _png_data_uri(buf.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _machine_kind(ds: dict[str, Any]) -> str:
    return "top1" if ds.get("labelled") else "agree"


def _kind_title(kind: str) -> str:
    return {"top1": "top-1 accuracy", "top5": "top-5 accuracy",
            "agree": "top-1 agreement with uncompressed"}.get(kind, kind)


def _codec_name(label: str) -> str:
    return label.split(":", 1)[0]


def _alpha_of(label: str, summary: dict[str, Any]) -> float | None:
    """The observer value of an odic codec label (from summary.codecs, else from the label)."""
    if _codec_name(label) != "odic":
        return None
    opts = (summary.get("codecs", {}).get(label) or {}).get("options") or {}
    if "alpha" in opts:
        return _num(opts["alpha"])
    for part in label.split(":")[1:]:
        if part.startswith("alpha="):
            value = part[len("alpha="):]
            return OBSERVER_NAMES.get(value, _num(value))
    return 0.0


def observer_series(label: str, ignore: tuple[str, ...] = ("alpha",)) -> str:
    """The odic setting a label belongs to once its observer is set aside: one trade-off line each.

    ``odic:alpha=1:refine=50`` and ``odic:alpha=0:refine=50`` share the series ``odic:refine=50``;
    the fast encoder's settings are ``odic``. Joining points of different encoders or models in one
    line would draw a trade-off no single setting makes. ``ignore`` names further options to set
    aside (the frontier across runs sets aside ``model``: the same weights under two file names).
    """
    return ":".join(p for p in label.split(":") if p.split("=", 1)[0] not in ignore)


def _curves(codecs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {label: [e for e in (entry.get("curve") or []) if isinstance(e, dict)]
            for label, entry in codecs.items() if isinstance(entry, dict)}


# ----------------------------------------------------------------------------- plots


def _plot_lines(ax: Any, curves: dict[str, list[dict[str, Any]]], rate_key: str, metric: str) -> int:
    drawn = 0
    for label, curve in curves.items():
        pts = sorted((b, v) for b, v in ((_num(e.get(rate_key)), _num(e.get(metric))) for e in curve)
                     if b is not None and b > 0 and v is not None)
        if not pts:
            continue
        odic = _codec_name(label) == "odic"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-" if odic else "--", marker="o", ms=3,
                lw=2.2 if odic else 1.2, label=label)
        drawn += 1
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.grid(True, which="both", alpha=0.3)
    return drawn


def rd_plot(ds_name: str, ds: dict[str, Any]) -> str | None:
    """PSNR and MS-SSIM against bpp; None when no curve has points."""
    plt = _pyplot()
    curves = _curves(ds.get("codecs") or {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = 0
    for ax, metric, title in ((axes[0], "psnr", "PSNR (dB, RGB)"), (axes[1], "ms_ssim", "MS-SSIM (RGB)")):
        drawn += _plot_lines(ax, curves, "bpp", metric)
        ax.set_ylabel(title)
    if not drawn:
        plt.close(fig)
        return None
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{ds_name}: rate-distortion")
    return _figure_uri(fig)


def accuracy_plot(ds_name: str, ds: dict[str, Any]) -> str | None:
    """Machine metric against each classifier's own bpp, with the uncompressed reference."""
    clfs = list(ds.get("crops") or {})
    if not clfs:
        return None
    plt = _pyplot()
    kind = _machine_kind(ds)
    curves = _curves(ds.get("codecs") or {})
    fig, axes = plt.subplots(1, len(clfs), figsize=(5.2 * len(clfs), 4.2), squeeze=False)
    drawn = 0
    for ax, clf in zip(axes[0], clfs, strict=True):
        drawn += _plot_lines(ax, curves, f"bpp/{clf}", f"{kind}/{clf}")
        ref = _num(((ds.get("reference") or {}).get(clf) or {}).get(kind))
        if ref is not None:
            ax.axhline(ref, color="k", ls=":", lw=1, label="uncompressed")
        ax.set_ylabel(_kind_title(kind))
        ax.set_title(f"{clf} ({(ds.get('crops') or {}).get(clf)} px crop)")
    if not drawn:
        plt.close(fig)
        return None
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{ds_name}: rate-accuracy")
    return _figure_uri(fig)


def tradeoff_points(ds: dict[str, Any], summary: dict[str, Any], rate: str, clf: str,
                    human: str = "ms_ssim") -> list[tuple[str, float, float, float | None]]:
    """(label, human metric, machine metric, odic alpha) at one at_bpp rate, where both are known."""
    kind = _machine_kind(ds)
    out = []
    for label, entry in (ds.get("codecs") or {}).items():
        at = ((entry or {}).get("at_bpp") or {}).get(rate) or {}
        h, m = _num(at.get(human)), _num(at.get(f"{kind}/{clf}"))
        if h is not None and m is not None:
            out.append((label, h, m, _alpha_of(label, summary)))
    return out


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both axes (larger is better on both), sorted by the first axis."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return sorted(front)


def tradeoff_plot(ds_name: str, ds: dict[str, Any], summary: dict[str, Any]) -> str | None:
    """Human quality (MS-SSIM) against the machine metric at each target bpp: the alpha frontier."""
    clfs = list(ds.get("crops") or {})
    if not clfs:
        return None
    clf = clfs[0]
    rates = [r for r in _rates(ds, summary) if tradeoff_points(ds, summary, r, clf)]
    if not rates:
        return None
    plt = _pyplot()
    kind = _machine_kind(ds)
    fig, axes = plt.subplots(1, len(rates), figsize=(4.4 * len(rates), 4.0), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        pts = tradeoff_points(ds, summary, rate, clf)
        series: dict[str, list[tuple[str, float, float, float | None]]] = {}
        for p in sorted((p for p in pts if p[3] is not None), key=lambda p: p[3] or 0.0):
            series.setdefault(observer_series(p[0]), []).append(p)
        for j, (name, odic) in enumerate(sorted(series.items(), key=lambda s: (s[0] != "odic", s[0]))):
            label = "odic, by observer α" if name == "odic" else f"{name.replace(':', ', ')}, by observer α"
            ax.plot([p[1] for p in odic], [p[2] for p in odic], "-o" if j == 0 else "--D",
                    color="C3" if j == 0 else f"C{(5 + j) % 10}", lw=2 if j == 0 else 1.2, ms=5, label=label)
            for p in odic:
                ax.annotate(f"α={p[3]:g}", (p[1], p[2]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for i, p in enumerate(q for q in pts if q[3] is None):
            ax.plot([p[1]], [p[2]], marker="sdv^<>ph*"[i % 10], ls="none", ms=6, color=f"C{i % 10}", label=p[0])
        front = pareto_front((p[1], p[2]) for p in pts)
        if len(front) > 1:
            ax.plot([f[0] for f in front], [f[1] for f in front], ":", color="gray", lw=1, label="Pareto frontier")
        ref = _num(((ds.get("reference") or {}).get(clf) or {}).get(kind))
        if ref is not None:
            ax.axhline(ref, color="k", ls=":", lw=0.8)
        ax.set_title(f"at {rate} bpp")
        ax.set_xlabel("MS-SSIM (human)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"{_kind_title(kind)}\n({clf})")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{ds_name}: human vs machine quality at equal rate")
    fig.tight_layout()
    return _figure_uri(fig)


# ----------------------------------------------------------------------------- tables


def _rates(ds: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    rates: list[str] = []
    for t in summary.get("at_bpp_targets") or []:
        if _num(t) is not None:
            rates.append(f"{float(t):g}")
    for entry in (ds.get("codecs") or {}).values():
        for r in ((entry or {}).get("at_bpp") or {}):
            if r not in rates:
                rates.append(r)
    return sorted(rates, key=lambda r: _num(r) or 0.0)


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(rows_i) + "</tr>" for rows_i in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def at_bpp_tables(ds: dict[str, Any], summary: dict[str, Any]) -> str:
    """One table per target bpp: codecs x metrics, the best value of each column in bold."""
    codecs = {k: v for k, v in (ds.get("codecs") or {}).items() if isinstance(v, dict)}
    if not codecs:
        return '<p class="note">No codec results for this dataset.</p>'
    clfs = list(ds.get("crops") or {})
    kinds = ("top1", "top5", "agree") if ds.get("labelled") else ("agree",)
    metrics = ["psnr", "ms_ssim"] + [f"{k}/{c}" for c in clfs for k in kinds]
    titles = {"psnr": "PSNR dB", "ms_ssim": "MS-SSIM"}
    out = []
    for rate in _rates(ds, summary):
        vals = {label: ((e.get("at_bpp") or {}).get(rate) or {}) for label, e in codecs.items()}
        present = [m for m in metrics if any(_num(v.get(m)) is not None for v in vals.values())]
        if not present:
            out.append(f'<h4>at {rate} bpp</h4><p class="note">No codec was measured around {rate} bpp.</p>')
            continue
        best = {m: max((_num(v.get(m)) for v in vals.values() if _num(v.get(m)) is not None), default=None)
                for m in present}
        rows = []
        for label in codecs:
            cells = [f'<td class="l">{_esc(label)}</td>']
            for m in present:
                v = _num(vals[label].get(m))
                cls = "na" if v is None else ("best" if v == best[m] and len(codecs) > 1 else "")
                cells.append(f'<td class="{cls}">{_fmt(m, v)}</td>')
            rows.append(cells)
        head = ["codec"] + [_esc(titles.get(m, m.replace("/", " / "))) for m in present]
        out.append(f"<h4>at {rate} bpp</h4>" + _table(head, rows))
    return "".join(out)


def bd_rate_table(ds: dict[str, Any]) -> str:
    rows = []
    ref = None
    for label, e in (ds.get("codecs") or {}).items():
        bd = (e or {}).get("bd_rate") or {}
        ref = bd.get("reference") or ref
        rows.append([f'<td class="l">{_esc(label)}</td>', f"<td>{_fmt('bd_ms_ssim', bd.get('ms_ssim'))}</td>",
                     f"<td>{_fmt('bd_psnr', bd.get('psnr'))}</td>"])
    if not rows:
        return ""
    note = (f'<p class="note">BD-rate against <code>{_esc(ref or "the reference")}</code>: '
            "negative = fewer bits for the same quality; – where the curves do not overlap.</p>")
    return _table(["codec", "BD-rate (MS-SSIM)", "BD-rate (PSNR)"], rows) + note


def reference_table(ds: dict[str, Any]) -> str:
    ref = ds.get("reference") or {}
    if not ref:
        return ""
    rows = [[f'<td class="l">{_esc(clf)}</td>', f"<td>{_esc(r.get('input_size', '–'))}</td>",
             f"<td>{_esc(r.get('crop_size', '–'))}</td>", f"<td>{_fmt('top1', r.get('top1'))}</td>",
             f"<td>{_fmt('top5', r.get('top5'))}</td>", f"<td>{_esc(r.get('n_images', '–'))}</td>"]
            for clf, r in ref.items() if isinstance(r, dict)]
    return "<h3>Uncompressed reference</h3>" + _table(
        ["classifier", "input px", "crop px", "top-1", "top-5", "images"], rows)


def speed_table(rows: list[dict[str, str]]) -> str:
    """Median encode/decode time and peak memory per codec from results.csv."""
    by: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        d = by.setdefault(r.get("codec", "?"), {"encode_s": [], "decode_s": [], "peak_mem_mb": []})
        for k in d:
            v = _num(r.get(k))
            if v is not None:
                d[k].append(v)
    if not by:
        return '<p class="note">results.csv is missing or empty: no speed table.</p>'
    out = []
    for codec, d in by.items():
        med = {k: statistics.median(v) if v else None for k, v in d.items()}
        mem = "–" if med["peak_mem_mb"] is None else f"{med['peak_mem_mb']:.1f}"
        out.append([f'<td class="l">{_esc(codec)}</td>', f"<td>{_fmt('encode_s', med['encode_s'])}</td>",
                    f"<td>{_fmt('decode_s', med['decode_s'])}</td>", f"<td>{mem}</td>",
                    f"<td>{len(d['encode_s'])}</td>"])
    return _table(["codec", "encode (median)", "decode (median)", "peak MB (median)", "rows"], out)


def codecs_table(summary: dict[str, Any]) -> str:
    rows = []
    for label, info in (summary.get("codecs") or {}).items():
        info = info if isinstance(info, dict) else {}
        opts = ", ".join(f"{k}={v}" for k, v in (info.get("options") or {}).items())
        rows.append([f'<td class="l">{_esc(label)}</td>', f'<td class="l">{_esc(info.get("version", "–"))}</td>',
                     f'<td class="l">{_esc(opts)}</td>', f'<td class="l">{_esc(info.get("container", ""))}</td>'])
    skipped = summary.get("skipped_codecs") or {}
    for label, why in skipped.items():
        rows.append([f'<td class="l">{_esc(label)}</td>', f'<td class="l na" colspan="3">skipped: {_esc(why)}</td>'])
    if not rows:
        return ""
    return _table(["codec", "encoder", "options", "container / headers"], rows, left=4)


# ----------------------------------------------------------------------------- crops


@dataclass
class CropTile:
    """One image of the side-by-side row: a title, the image (None: unavailable), rate, top-5."""

    title: str
    image: Image.Image | None
    bpp: float | None = None
    top5: list[tuple[int, float]] = field(default_factory=list)
    note: str = ""


def _crop_specs(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, codec spec) for odic human, odic machine, HEVC and JPEG, preferring the bench's own."""
    labels = list(summary.get("codecs") or {})

    def odic_at(alpha: float) -> str:
        for label in labels:
            if _alpha_of(label, summary) == alpha:
                return label
        return f"odic:alpha={alpha:g}"

    hevc = next((lab for lab in ("hevc", "hevc-raw") if lab in labels), None)
    hevc = hevc or next((lab for lab in labels if _codec_name(lab) == "hevc"), "hevc")
    jpeg = "jpeg" if "jpeg" in labels else next((lab for lab in labels if _codec_name(lab) == "jpeg"), "jpeg")
    return [("odic human (α=0)", odic_at(0.0)), ("odic machine (α=1)", odic_at(1.0)),
            (f"HEVC ({hevc})", hevc), (f"JPEG ({jpeg})", jpeg)]


def _dataset_images(ds_name: str, ds: dict[str, Any], n: int) -> tuple[list[tuple[str, Image.Image, int | None]], str]:
    """The first ``n`` images of the dataset the bench used, or ([], why not)."""
    from .bench.datasets import DatasetError, load_dataset, skimage_photos

    try:
        if ds.get("layout") == "skimage":
            dataset = skimage_photos()
        else:
            source = ds.get("source") or ""
            if not source or not Path(source).is_dir():
                return [], f"the dataset images are not at {source or '(no source recorded)'}"
            dataset = load_dataset(ds_name, source)
        out = []
        for item in dataset.items[:n]:
            out.append((item.key, item.load(), item.label))
        return out, ""
    except (DatasetError, OSError) as exc:
        return [], f"cannot read the dataset images ({exc})"


def _top5(observer: Any, image: Image.Image) -> list[tuple[int, float]]:
    import torch

    from .bench.protocol import centre_crop, to_tensor

    n = observer.spec.input_size
    with torch.no_grad():
        logits = observer(to_tensor([centre_crop(image, n)]).to(next(observer.buffers()).device))
        p = torch.softmax(logits.float(), dim=1)[0]
        top = p.topk(5)
    return [(int(i), float(v)) for v, i in zip(top.values, top.indices, strict=True)]


def make_crops(summary: dict[str, Any], ds_name: str, ds: dict[str, Any], *, n_images: int = 2,
               bpp: float = DEFAULT_CROP_BPP, classifier: str | None = None, device: str = "cpu",
               log: Callable[[str], None] | None = None) -> tuple[list[tuple[str, int | None, list[CropTile]]], str]:
    """Rows of crops (image key, label, tiles) at ``bpp``, or ([], why there are none)."""
    from .transforms import encode_at_bpp

    if n_images <= 0:
        return [], "crops disabled"
    images, why = _dataset_images(ds_name, ds, n_images)
    if not images:
        return [], why
    clf = classifier or next(iter(ds.get("crops") or summary.get("classifiers") or {}), None)
    observer, clf_note = None, ""
    if clf:
        try:
            from .observers import create_observer

            observer = create_observer(clf, device=device)
        except Exception as exc:  # noqa: BLE001 - a missing classifier only removes the labels
            clf_note = f"classifier {clf} unavailable ({exc}); no labels"
    from .bench.protocol import centre_crop, reference_crop

    codecs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    specs = _crop_specs(summary)
    for _title, spec in specs:
        try:
            from .codecs import create_codec, parse_codec_spec

            name, opts = parse_codec_spec(spec)
            if name == "odic":
                opts.setdefault("device", device)
            codecs[spec] = create_codec(name, **opts)
        except Exception as exc:  # noqa: BLE001 - shown in the tile instead
            errors[spec] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    rows = []
    for key, original, label in images:
        if observer is not None:
            crop = reference_crop(original, observer.spec.crop_size)
        else:
            size = min(HUMAN_CROP, *original.size)
            crop = centre_crop(original, size)
        tiles = [CropTile("original", crop, None, _top5(observer, crop) if observer is not None else [])]
        for title, spec in specs:
            if spec not in codecs:
                tiles.append(CropTile(title, None, note=f"unavailable: {errors.get(spec, '')}"))
                continue
            if log:
                log(f"odic report: {ds_name} {key}: {spec} at {bpp:g} bpp")
            try:
                data, _ = encode_at_bpp(codecs[spec], crop, bpp)
                decoded = codecs[spec].decode(data).convert("RGB")
            except Exception as exc:  # noqa: BLE001 - one failing codec must not sink the report
                tiles.append(CropTile(title, None, note=f"failed: {exc}"))
                continue
            got = len(data) * 8 / (crop.width * crop.height)
            tiles.append(CropTile(title, decoded, got, _top5(observer, decoded) if observer is not None else []))
        rows.append((key, label, tiles))
    note = f"{clf_note}" if clf_note else (f"top-5 of {clf}" if observer is not None else "no classifier in this bench")
    return rows, note


def crops_html(rows: list[tuple[str, int | None, list[CropTile]]], names: list[str], bpp: float,
               note: str) -> str:
    if not rows:
        return f'<p class="note">No side-by-side crops: {_esc(note)}.</p>'
    out = [f'<p class="note">Each codec compressed the same crop, its setting searched for {bpp:g} bpp '
           f"(whole file, header included; the rate reached is under each image); {_esc(note)}. "
           "Green: the class of the uncompressed crop's top-1 (or the true label where known).</p>"]
    for key, label, tiles in rows:
        ref = label if label is not None else (tiles[0].top5[0][0] if tiles and tiles[0].top5 else None)
        truth = f" (label: {_esc(names[label] if 0 <= label < len(names) else label)})" if label is not None else ""
        out.append(f"<h4>{_esc(key)}{truth}</h4><div class=\"crops\">")
        for t in tiles:
            if t.image is None:
                img = f'<div class="miss">{_esc(t.note or "unavailable")}</div>'
            else:
                img = f'<img alt="{_esc(t.title)}" src="{_image_uri(t.image)}" width="256" height="256">'
            rate = "uncompressed" if t.title == "original" else (f"{t.bpp:.3f} bpp" if t.bpp is not None else "")
            items = "".join(
                f'<li class="{"ref" if i == ref else ""}">{_esc(names[i] if 0 <= i < len(names) else i)} '
                f"{100 * p:.0f}%</li>" for i, p in t.top5)
            top = f"<ol>{items}</ol>" if items else ""
            out.append(f'<div class="crop"><div class="t">{_esc(t.title)}</div>{img}<div>{rate}</div>{top}</div>')
        out.append("</div>")
    return "".join(out)


# ----------------------------------------------------------------------------- page


def build_report(results_dir: str | Path, *, crops: int = 2, crop_bpp: float = DEFAULT_CROP_BPP,
                 classifier: str | None = None, device: str = "cpu",
                 log: Callable[[str], None] | None = None) -> str:
    """The report as one HTML string (see the module docstring); ``crops=0`` skips the crops."""
    if not crop_bpp > 0:
        raise ReportError(f"crop bpp must be positive, got {crop_bpp}")
    summary = load_summary(results_dir)
    results = load_results_csv(results_dir)
    names = class_names()
    title = f"odic bench report: {Path(results_dir).resolve().name}"
    parts = [f"<h1>{_esc(title)}</h1>"]
    meta = [("command", summary.get("command")), ("created", summary.get("created")),
            ("odic", summary.get("odic_version")), ("schema", summary.get("schema")),
            ("odic models", ", ".join(f"{k}: {v}" for k, v in (summary.get("odic_model_ids") or {}).items())),
            ("classifiers", ", ".join(summary.get("classifiers") or {})),
            ("platform", " ".join(str(v) for v in (summary.get("platform") or {}).values()))]
    parts.append('<p class="meta">' + "<br>".join(f"<b>{k}</b>: <code>{_esc(v)}</code>" for k, v in meta if v)
                 + "</p>")
    if summary.get("schema") and not str(summary["schema"]).startswith("odic-bench/"):
        parts.append(f'<p class="note">Unknown schema {_esc(summary["schema"])}; showing what could be read.</p>')
    for note in summary.get("notes") or []:
        parts.append(f'<p class="note">{_esc(note)}</p>')
    if not summary["datasets"]:
        parts.append('<p class="note">The summary holds no dataset.</p>')
    for ds_name, ds in summary["datasets"].items():
        if not isinstance(ds, dict):
            continue
        crop = ds.get("primary_crop")
        where = f"{crop}x{crop} crops" if crop else "whole images"
        parts.append(f"<h2>Dataset {_esc(ds_name)}</h2>")
        parts.append(f'<p class="meta">{_esc(ds.get("n_images", "?"))} images, {_esc(ds.get("layout", "?"))} '
                     f'layout, {"labelled" if ds.get("labelled") else "unlabelled"}, human metrics on '
                     f"{_esc(where)}; source <code>{_esc(ds.get('source', '?'))}</code></p>")
        parts.append(reference_table(ds))
        plots = (("Rate-distortion", rd_plot(ds_name, ds)),
                 ("Rate-accuracy", accuracy_plot(ds_name, ds)),
                 ("Trade-off frontier (human vs machine at equal rate)", tradeoff_plot(ds_name, ds, summary)))
        for heading, uri in plots:
            parts.append(f"<h3>{heading}</h3>")
            if uri:
                parts.append(f'<img class="plot" alt="{_esc(heading)} {_esc(ds_name)}" src="{uri}">')
            else:
                parts.append('<p class="note">Not available for this dataset (no classifier or no points).</p>')
        parts.append("<h3>Metrics at equal rate (at_bpp)</h3>")
        parts.append('<p class="note">Interpolated in log(bpp) between measured settings; – outside the measured '
                     "range. Best value per column in bold.</p>")
        parts.append(at_bpp_tables(ds, summary))
        parts.append("<h3>BD-rate</h3>" + bd_rate_table(ds))
        parts.append(f"<h3>Side-by-side crops at {crop_bpp:g} bpp</h3>")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows, note = make_crops(summary, ds_name, ds, n_images=crops, bpp=crop_bpp, classifier=classifier,
                                    device=device, log=log)
        parts.append(crops_html(rows, names, crop_bpp, note))
    parts.append("<h2>Speed (from results.csv)</h2>" + speed_table(results))
    parts.append("<h2>Codecs</h2>" + codecs_table(summary))
    body = "\n".join(p for p in parts if p)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_esc(title)}</title>"
            f"<link rel=\"icon\" href=\"data:,\"><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(results_dir: str | Path, output: str | Path, **options: Any) -> Path:
    """Build the report and write it to ``output`` (atomically); returns the path."""
    page = build_report(results_dir, **options)
    out = Path(output)
    if out.parent and not out.parent.is_dir():
        raise ReportError(f"output folder {out.parent} does not exist")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


# ----------------------------------------------------------------------------- across runs: tables, frontier


def results_tables(results_dirs: Sequence[str | Path]) -> str:
    """The at_bpp and BD-rate tables of each results folder as Markdown, the numbers docs quote.

    The same values as odic bench's ``at_bpp`` (linear in log-bpp between measured settings, "-"
    outside), so a results page and the plots never disagree.
    """
    from .bench.summary import at_bpp_markdown

    return "".join(f"<!-- {Path(d) / 'summary.json'} -->\n\n{at_bpp_markdown(load_summary(d))}\n"
                   for d in results_dirs)


FrontierPoints = dict[str, tuple[float | None, float | None]]


def frontier_points(summaries: Iterable[dict[str, Any]], human: str, labelled: str, rate: str,
                    classifier: str) -> tuple[FrontierPoints, float | None]:
    """Each codec's (MS-SSIM on ``human``, top-1 of ``classifier`` on ``labelled``) at ``rate`` bpp,
    and the uncompressed top-1.

    The two datasets may come from different runs: a later summary's value replaces an earlier
    one's, a value it lacks keeps the earlier one. ``None`` where no run measured it.
    """
    points: FrontierPoints = {}
    reference = None
    for summary in summaries:
        hum = (summary["datasets"].get(human) or {}).get("codecs") or {}
        lab = (summary["datasets"].get(labelled) or {}).get("codecs") or {}
        for label in [*hum, *(lab_label for lab_label in lab if lab_label not in hum)]:
            x = _num((((hum.get(label) or {}).get("at_bpp") or {}).get(rate) or {}).get("ms_ssim"))
            y = _num((((lab.get(label) or {}).get("at_bpp") or {}).get(rate) or {}).get(f"top1/{classifier}"))
            old_x, old_y = points.get(label, (None, None))
            points[label] = (old_x if x is None else x, old_y if y is None else y)
        ref = _num((((summary["datasets"].get(labelled) or {}).get("reference") or {}).get(classifier) or {})
                   .get("top1"))
        reference = reference if ref is None else ref
    return points, reference


def frontier_series(points: FrontierPoints) -> dict[str, list[tuple[float, tuple[float, float]]]]:
    """odic's points with both values, one series per setting other than alpha and the weights file,
    each in order of alpha.

    The fast encoder's settings form the frontier; refined settings (``refine=...``) become their
    own series, so one plot shows what the slower encoders buy at each end.
    """
    series: dict[str, list[tuple[float, tuple[float, float]]]] = {}
    for label, (x, y) in points.items():
        alpha = _alpha_of(label, {}) if "alpha=" in label else None
        if alpha is None or x is None or y is None:
            continue
        series.setdefault(observer_series(label, ignore=("alpha", "model")), []).append((alpha, (x, y)))
    return {name: sorted(line) for name, line in series.items()}


def write_frontier(results_dirs: Sequence[str | Path], output: str | Path, *, human: str = "kodak",
                   labelled: str = "imagenet", bpp: float = DEFAULT_CROP_BPP,
                   classifier: str | None = None) -> dict[str, Any]:
    """Plot the observer trade-off of several runs at one rate to ``output``.png and .svg.

    x: MS-SSIM on ``human``; y: top-1 of ``classifier`` (default: the first the labelled dataset
    was classified with) on ``labelled``; values as odic bench interpolated them at ``bpp``. Each
    classical codec is a point; odic's observer settings are joined in order of alpha, one line per
    encoder. Returns the files written, the points and the uncompressed top-1.
    """
    summaries = [load_summary(d) for d in results_dirs]
    rate = f"{bpp:g}"
    if classifier is None:
        crops = [(s["datasets"].get(labelled) or {}).get("crops") or {} for s in summaries]
        classifier = next((clf for c in crops for clf in c), None)
        if classifier is None:
            raise ReportError(f"no run classified a dataset called '{labelled}' (see --labelled)")
    points, reference = frontier_points(summaries, human, labelled, rate, classifier)
    if not any(x is not None and y is not None for x, y in points.values()):
        raise ReportError(f"no codec has both MS-SSIM on '{human}' and top-1 of {classifier} on '{labelled}' "
                          f"at {rate} bpp")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    all_series = frontier_series(points)
    for i, (name, line) in enumerate(sorted(all_series.items())):
        marker, color = ("o-", "C3") if name == "odic" else ("D--", f"C{4 + i}")
        label = name.replace("odic:", "odic, ").replace(":", ", ")
        if name == "odic":
            label = "odic (one model)" if len(all_series) == 1 else "odic, fast encoder"
        ax.plot([xy[0] for _, xy in line], [xy[1] for _, xy in line], marker, color=color, label=label)
        for alpha, xy in line:
            ax.annotate(f"α={alpha:g}", xy, textcoords="offset points", xytext=(4, 4), fontsize=8)
    for label, (x, y) in sorted(points.items()):
        if _codec_name(label) != "odic" and x is not None and y is not None:
            ax.plot(x, y, "s", label=label)
    if reference is not None:
        ax.axhline(reference, color="gray", ls="--", lw=1, label="uncompressed top-1")
    ax.set_xlabel(f"MS-SSIM on {human} at {rate} bpp")
    ax.set_ylabel(f"top-1 ({classifier}) on {labelled} at {rate} bpp")
    ax.set_title("Observer trade-off: human vs machine quality at one rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    stem = Path(output)
    stem = stem.with_suffix("") if stem.suffix in (".png", ".svg") else stem
    files = [stem.with_name(f"{stem.name}.{ext}") for ext in ("png", "svg")]
    for path in files:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"files": [str(p) for p in files], "classifier": classifier, "rate": rate, "points": points,
            "uncompressed_top1": reference}
