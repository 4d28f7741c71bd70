"""Print the at_bpp and BD-rate tables of the summaries that scripts/eval_release.sh writes.

    .venv/bin/python scripts/results_tables.py results/odic-kodak/summary.json \
        results/odic-imagenet/summary.json results/odic-imagenet-unseen/summary.json

A thin wrapper over ``odic.bench.summary.at_bpp_markdown``, so docs/results.md quotes the same
numbers (odic bench's ``at_bpp``: linear in log-bpp between measured settings, "-" outside) as the
plots.
"""

from __future__ import annotations

import argparse
import json
import sys

sys.path.insert(0, "src")
from odic.bench.summary import at_bpp_markdown  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summaries", nargs="+", help="summary.json files")
    args = ap.parse_args()
    for path in args.summaries:
        print(f"<!-- {path} -->\n")
        print(at_bpp_markdown(json.load(open(path))))


if __name__ == "__main__":
    main()
