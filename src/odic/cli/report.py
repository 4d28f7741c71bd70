"""``odic report RESULTS_DIR -o report.html``: one self-contained HTML page from a bench folder.

``--tables`` prints the at-bpp and BD-rate tables as Markdown and ``--frontier`` plots the observer
trade-off across several folders: the figures docs/results.md quotes, from the package.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..report import DEFAULT_CROP_BPP
from . import EXIT_FAILED, EXIT_OK, fail


def register(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report", help="write one self-contained HTML report from an odic bench results folder",
        description="Build one HTML file (plots and images embedded, no network needed) from the "
                    "results.csv and summary.json that odic bench wrote: rate-distortion and rate-accuracy "
                    "plots, the at-bpp tables, the human/machine trade-off frontier and side-by-side crops "
                    "with the classifier's top-5 labels. --tables prints the at-bpp and BD-rate tables as "
                    "Markdown instead; --frontier plots the observer trade-off across several folders.",
        epilog="Examples: odic report results/demo -o report.html; "
               "odic report results/odic-kodak results/odic-imagenet --tables; "
               "odic report results/odic-kodak results/odic-imagenet --frontier -o docs/results/frontier",
    )
    p.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR",
                   help="the --out folder of odic bench (holds summary.json); several with --tables or --frontier")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--tables", action="store_true",
                      help="print each folder's at-bpp and BD-rate tables as Markdown (no HTML)")
    mode.add_argument("--frontier", action="store_true",
                      help="plot MS-SSIM on --human against top-1 on --labelled at --bpp to OUTPUT.png and "
                           "OUTPUT.svg, gathering the datasets from every folder (no HTML); prints the points")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="file to write (default: report.html; with --frontier, the stem 'frontier')")
    p.add_argument("--crops", type=int, default=2, metavar="N",
                   help="images per dataset shown side by side, re-compressed from the dataset; 0 = none (default: 2)")
    p.add_argument("--bpp", type=float, default=DEFAULT_CROP_BPP, metavar="BPP",
                   help="bits per pixel of the side-by-side crops, whole file; with --frontier, the at-bpp rate "
                        "of the plot (default: %(default)g)")
    p.add_argument("--classifier", default=None, metavar="NAME",
                   help="classifier whose top-5 labels go under the crops, or whose top-1 is the frontier's "
                        "y axis (default: the bench's first)")
    p.add_argument("--human", default="kodak", metavar="DATASET",
                   help="with --frontier: the dataset of the MS-SSIM axis (default: %(default)s)")
    p.add_argument("--labelled", default="imagenet", metavar="DATASET",
                   help="with --frontier: the dataset of the top-1 axis (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device for odic and the classifier (default: cpu)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``odic report``: one-line error and a non-zero exit on bad input."""
    from ..report import ReportError, results_tables, write_frontier, write_report

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        if args.tables:
            print(results_tables(args.results_dirs), end="")
            return EXIT_OK
        if args.frontier:
            stem = Path(args.output or "frontier")
            taken = [p for p in (stem.with_name(f"{stem.name}.png"), stem.with_name(f"{stem.name}.svg"))
                     if p.exists()]
            if taken and not args.force:
                fail(f"{taken[0]} exists (use -f to overwrite)")
                return EXIT_FAILED
            frontier = write_frontier(args.results_dirs, stem, human=args.human, labelled=args.labelled,
                                      bpp=args.bpp, classifier=args.classifier)
            if not args.quiet:
                print(json.dumps({k: frontier[k] for k in ("classifier", "rate", "points", "uncompressed_top1")},
                                 indent=1))
            log(f"wrote {', '.join(frontier['files'])}")
            return EXIT_OK
        if len(args.results_dirs) != 1:
            fail("give one RESULTS_DIR for the HTML report (several only with --tables or --frontier)")
            return EXIT_FAILED
        out = Path(args.output or "report.html")
        if out.exists() and not args.force:
            fail(f"{out} exists (use -f to overwrite)")
            return EXIT_FAILED
        if args.crops < 0:
            fail("--crops must be 0 or more")
            return EXIT_FAILED
        write_report(args.results_dirs[0], out, crops=args.crops, crop_bpp=args.bpp, classifier=args.classifier,
                     device=args.device, log=log)
    except ReportError as exc:
        fail(str(exc))
        return EXIT_FAILED
    if not args.quiet:
        print(f"wrote {out}")
    return EXIT_OK
