"""``odic bench`` (codecs x datasets x observers) and ``odic demo`` (a small bench, no data needed)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

DEMO_CODECS = "odic:alpha=0,odic:alpha=1,jpeg,webp,hevc-raw,avif,jxl"


def _err(message: str) -> int:
    print(f"odic: error: {message}", file=sys.stderr)
    return 2


def register(sub: Any) -> None:
    """Add the ``bench`` and ``demo`` subcommands."""
    from odic.bench import AT_BPP, DEFAULT_CODECS
    from odic.bench.presets import DEFAULT_DATA_ROOT, PRESETS

    b = sub.add_parser(
        "bench", help="measure codecs for human and machine observers",
        description="Sweep each codec over its settings on each dataset and write results.csv, "
                    "summary.json (mean curves, at-bpp tables, BD-rates) and plots. Resumes from OUT/cache.",
        epilog="Example: odic bench --data kodak=data/kodak --data imagenet=data/imagenet-sample "
               "--codecs odic:alpha=0,odic:alpha=1,jpeg,hevc --classifiers efficientnet_lite0 "
               "--out results/run1. "
               "Under torchrun each rank takes a share of the images and rank 0 writes the outputs. "
               "Presets: " + "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items()) + ".",
    )
    b.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                   help="one of the project's protocol benches (listed below): sets the dataset, codecs, "
                        "classifiers and limit (--limit may still be given)")
    b.add_argument("--model", action="append", default=[], metavar="MODEL",
                   help="with --preset: bench its odic settings with this weights file or installed model; "
                        "repeatable, each model in turn (default: the installed default model)")
    b.add_argument("--refine", type=int, default=None, metavar="STEPS",
                   help="with --preset: refinement steps of its refined encoders (default: the preset's)")
    b.add_argument("--data-root", default=None, metavar="DIR",
                   help="with --preset: the folder holding kodak/ and imagenet-sample/ "
                        f"(default: $ODIC_DATA, else {DEFAULT_DATA_ROOT})")
    b.add_argument("--data", action="append", default=[], metavar="NAME=DIR[:LABELS]",
                   help="a dataset; repeatable. DIR alone: human metrics only (append ':classify' for "
                        "top-1 agreement). LABELS: labels.csv (file,label), val.txt or the ILSVRC-2012 "
                        "devkit ground truth; a labels.csv inside DIR or an ImageFolder tree is "
                        "found by itself")
    b.add_argument("--codecs", default=None, metavar="SPEC,...",
                   help="comma-separated codec specs, NAME[:key=value...], e.g. hevc:chroma=420, "
                        "odic:alpha=1, jpeg:q=10/30/50 (default: " + ",".join(DEFAULT_CODECS) + "). "
                        "hevc-raw, the BD-rate reference, is always added. Your own refine classifier: "
                        "odic:alpha=1:refine=50:refine_classifier=package.module.factory (dots: ':' separates "
                        "options)")
    b.add_argument("--classifiers", default=None, metavar="NAME,...",
                   help="observers for the classification protocol, e.g. "
                        "efficientnet_lite0,efficientnet_lite1, or your own model as package.module:factory "
                        "(default: none); run on labelled datasets and on folders marked ':classify'")
    b.add_argument("--out", required=True, metavar="DIR", help="results folder (created; reused to resume)")
    b.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only the first N images of each dataset (default: all)")
    b.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default: 1)")
    b.add_argument("--device", default="cpu", help="torch device for classifiers and odic (default: cpu)")
    b.add_argument("--at-bpp", default=",".join(f"{t:g}" for t in AT_BPP), metavar="BPP,...",
                   help="rates for the at_bpp tables in bits per pixel (default: %(default)s)")
    b.add_argument("--no-plots", action="store_true", help="skip the PNG/SVG plots")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar or table")
    b.set_defaults(func=run_bench_command)

    d = sub.add_parser(
        "demo", help="a small bench on scikit-image's photos; prints a table and writes plots",
        description="Compress astronaut, chelsea, coffee, rocket and motorcycle (shipped with scikit-image) "
                    "with odic and classical codecs; report MS-SSIM, PSNR and EfficientNet-Lite0 "
                    "top-1 agreement.",
    )
    d.add_argument("--out", default="results/demo", metavar="DIR",
                   help="results folder (default: %(default)s)")
    d.add_argument("--codecs", default=DEMO_CODECS, metavar="SPEC,...",
                   help="codec specs (default: %(default)s)")
    d.add_argument("--classifier", default="efficientnet_lite0", help="observer (default: %(default)s)")
    d.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default: 1)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=run_demo_command)


def _parse_data(specs: list[str]) -> list[Any]:
    from odic.bench import load_dataset

    out = []
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--data '{spec}' must look like NAME=DIR[:LABELS]")
        name, rest = spec.split("=", 1)
        classify = None
        if rest.endswith(":classify"):
            rest, classify = rest[: -len(":classify")], True
        out.append(load_dataset(name.strip(), rest, classify=classify))
    return out


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed when run from a shell, else rebuilt from the parsed options."""
    if sys.argv[1:2] == ["bench"]:
        return shlex.join(["odic", *sys.argv[1:]])
    given = [("preset", args.preset), *[("model", m) for m in args.model], ("refine", args.refine),
             ("data-root", args.data_root), *[("data", d) for d in args.data], ("codecs", args.codecs),
             ("classifiers", args.classifiers), ("out", args.out), ("threads", args.threads), ("limit", args.limit)]
    return shlex.join(["odic", "bench", *[f"--{flag}={value}" for flag, value in given if value not in (None, "")]])


def _what_to_bench(args: argparse.Namespace) -> tuple[list[Any], list[str], list[str], int | None]:
    """(datasets, codec specs, classifiers, limit) from --preset, or from --data, --codecs and --classifiers."""
    from odic.bench import DEFAULT_CODECS, load_dataset
    from odic.bench.presets import get_preset, preset_codecs, preset_data_folder

    if not args.preset:
        for flag, value in (("--model", args.model), ("--refine", args.refine), ("--data-root", args.data_root)):
            if value not in (None, []):
                raise ValueError(f"{flag} needs --preset")
        codecs = _split(args.codecs) if args.codecs is not None else list(DEFAULT_CODECS)
        return _parse_data(args.data), codecs, _split(args.classifiers or ""), args.limit
    for flag, value in (("--data", args.data), ("--codecs", args.codecs), ("--classifiers", args.classifiers)):
        if value not in (None, []):
            raise ValueError(f"--preset {args.preset} sets {flag}; leave it out")
    preset = get_preset(args.preset)
    dataset = load_dataset(preset.dataset, str(preset_data_folder(args.preset, args.data_root)))
    limit = args.limit if args.limit is not None else preset.limit
    return [dataset], preset_codecs(args.preset, args.model, args.refine), list(preset.classifiers), limit


def _check_classifiers(names: list[str]) -> None:
    """Each of ``--classifiers`` must give logits (B, K): the protocol scores their top-1 and top-5.

    A user's model registered without a kind is built once to see its output.
    """
    from odic.observers import create_observer, get_spec

    for name in names:
        try:
            kind = get_spec(name).kind or create_observer(name).kind
        except KeyError as exc:
            raise ValueError(f"--classifiers: {exc.args[0]}") from None
        if kind != "classifier":
            raise ValueError(f"--classifiers: {name!r} is of kind {kind!r}; the bench scores top-1 agreement, "
                             "which needs a classifier's logits (B, K)")


def run_bench_command(args: argparse.Namespace) -> int:
    """Handler of ``odic bench``."""
    from odic.bench import BenchConfig, BenchError, DatasetError, run_bench

    from .codec import import_from_cwd

    import_from_cwd()
    try:
        at_bpp = tuple(float(t) for t in _split(args.at_bpp))
        if any(t <= 0 for t in at_bpp):
            raise ValueError("--at-bpp values must be positive")
        if args.limit is not None and args.limit < 1:
            raise ValueError("--limit must be at least 1")
        datasets, codecs, classifiers, limit = _what_to_bench(args)
        _check_classifiers(classifiers)
        cfg = BenchConfig(datasets=datasets, codecs=codecs, out=Path(args.out), classifiers=classifiers,
                          limit=limit, threads=args.threads,
                          device=args.device, at_bpp=at_bpp, plots=not args.no_plots,
                          progress=not args.quiet, command=_command_line(args))
        summary = run_bench(cfg)
    except (BenchError, DatasetError, ValueError) as exc:
        return _err(str(exc))
    if summary is not None and not args.quiet:
        print_table(summary)
        print(f"wrote {Path(args.out) / 'summary.json'}, results.csv and plots/")
    return 0


def run_demo_command(args: argparse.Namespace) -> int:
    """Handler of ``odic demo``."""
    from odic.bench import BenchConfig, BenchError, DatasetError, run_bench, skimage_photos

    try:
        cfg = BenchConfig(datasets=[skimage_photos()], codecs=_split(args.codecs), out=Path(args.out),
                          classifiers=[args.classifier], threads=args.threads, at_bpp=(0.25, 0.5, 1.0),
                          progress=not args.quiet, command="odic demo")
        summary = run_bench(cfg)
    except (BenchError, DatasetError, ValueError) as exc:
        return _err(str(exc))
    if summary is not None:
        print_table(summary)
        print(f"plots: {Path(args.out) / 'plots'}")
    return 0


def print_table(summary: dict[str, Any]) -> None:
    """One rich table per dataset: each codec's metrics at each at_bpp rate."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for ds_name, ds in summary["datasets"].items():
        kind = "top1" if ds["labelled"] else "agree"
        clfs = list(ds["crops"])
        table = Table(title=f"{ds_name} ({ds['n_images']} images): metrics at fixed bpp "
                            "(log-bpp interpolated; - = rate not reached)")
        table.add_column("codec")
        table.add_column("bpp", justify="right")
        table.add_column("MS-SSIM", justify="right")
        table.add_column("PSNR", justify="right")
        for clf in clfs:
            table.add_column(f"{kind} {clf}", justify="right")
        table.add_column("BD-rate MS-SSIM", justify="right")
        refs = ["", "", ""]
        for clf in clfs:
            v = ds["reference"][clf].get(kind)
            refs.append("" if v is None else f"{100 * v:.1f}%")
        table.add_row("uncompressed", *refs, "")
        for label, entry in ds["codecs"].items():
            bd = entry["bd_rate"]["ms_ssim"]
            for i, (rate, vals) in enumerate(entry["at_bpp"].items()):
                cells = [label if i == 0 else "", rate]
                for m, fmt in (("ms_ssim", "{:.4f}"), ("psnr", "{:.2f}")):
                    cells.append("-" if vals.get(m) is None else fmt.format(vals[m]))
                for clf in clfs:
                    v = vals.get(f"{kind}/{clf}")
                    cells.append("-" if v is None else f"{100 * v:.1f}%")
                cells.append(("-" if bd is None else f"{bd:+.1f}%") if i == 0 else "")
                table.add_row(*cells, end_section=i == len(entry["at_bpp"]) - 1)
        console.print(table)
