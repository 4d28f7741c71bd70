"""``odic report RESULTS_DIR -o report.html``: one self-contained HTML page from a bench folder."""

from __future__ import annotations

import argparse
import sys

from . import EXIT_FAILED, EXIT_OK, fail


def register(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report", help="write one self-contained HTML report from an odic bench results folder",
        description="Build one HTML file (plots and images embedded, no network needed) from the "
                    "results.csv and summary.json that odic bench wrote: rate-distortion and rate-accuracy "
                    "plots, the at-bpp tables, the human/machine trade-off frontier and side-by-side crops "
                    "with the classifier's top-5 labels.",
        epilog="Example: odic report results/demo -o report.html",
    )
    p.add_argument("results_dir", metavar="RESULTS_DIR", help="the --out folder of odic bench (holds summary.json)")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE",
                   help="HTML file to write (default: report.html)")
    p.add_argument("--crops", type=int, default=2, metavar="N",
                   help="images per dataset shown side by side, re-compressed from the dataset; 0 = none (default: 2)")
    p.add_argument("--bpp", type=float, default=0.25, metavar="BPP",
                   help="bits per pixel of the side-by-side crops, whole file (default: 0.25)")
    p.add_argument("--classifier", default=None, metavar="NAME",
                   help="classifier whose top-5 labels go under the crops (default: the bench's first)")
    p.add_argument("--device", default="cpu", help="torch device for odic and the classifier (default: cpu)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``odic report``: one-line error and a non-zero exit on bad input."""
    from pathlib import Path

    from ..report import ReportError, write_report

    out = Path(args.output)
    if out.exists() and not args.force:
        fail(f"{out} exists (use -f to overwrite)")
        return EXIT_FAILED
    if args.crops < 0:
        fail("--crops must be 0 or more")
        return EXIT_FAILED

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        write_report(args.results_dir, out, crops=args.crops, crop_bpp=args.bpp, classifier=args.classifier,
                     device=args.device, log=log)
    except ReportError as exc:
        fail(str(exc))
        return EXIT_FAILED
    if not args.quiet:
        print(f"wrote {out}")
    return EXIT_OK
