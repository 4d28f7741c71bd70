#!/usr/bin/env python
"""Longer fuzzing of the .odic parser and decoder than the test suite's fixed budget.

    .venv/bin/python scripts/fuzz.py --minutes 10 [--seed 1]

Same target and oracle as tests/test_reliability.py::test_fuzz_parser_and_decoder
(tests/fuzzing.py): random edits of small valid streams, mostly with a recomputed CRC, each
decoded; anything but an image of the declared size or a one-line FormatError/ModelNotFound is
a failure. Before each case the input is written to ``fuzz-current.odic`` so that a crash
(segfault) leaves its reproducer behind; failures are saved as ``fuzz-failure-N.odic``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KINDS = ["flip", "set", "truncate", "insert", "delete", "garbage"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for reproducers")
    args = ap.parse_args()

    import torch
    from tests.fuzzing import Mutation, check_stream, mutate, seed_streams

    import odic

    torch.set_num_threads(1)
    codec = odic.load()
    seeds = seed_streams(codec)
    rng = np.random.default_rng(args.seed)
    outcomes: Counter[str] = Counter()
    failures = 0
    end = time.monotonic() + 60 * args.minutes
    current = args.out / "fuzz-current.odic"
    while time.monotonic() < end:
        muts = [
            Mutation(KINDS[rng.integers(len(KINDS))], int(rng.integers(0, 5000)), int(rng.integers(0, 256)),
                     rng.bytes(int(rng.integers(0, 25))))
            for _ in range(int(rng.integers(1, 5)))
        ]
        data = mutate(seeds[int(rng.integers(len(seeds)))], muts, fix_crc=bool(rng.random() < 0.8))
        current.write_bytes(data)
        try:
            outcomes[check_stream(codec, data)] += 1
        except AssertionError as exc:
            failures += 1
            (args.out / f"fuzz-failure-{failures}.odic").write_bytes(data)
            print(f"failure {failures}: {exc}", flush=True)
    current.unlink(missing_ok=True)
    total = sum(outcomes.values()) + failures
    print(f"{total} cases in {args.minutes} min: {dict(outcomes)}, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
