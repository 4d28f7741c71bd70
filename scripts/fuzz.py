#!/usr/bin/env python
"""Longer fuzzing of the .odic parser and decoder than the test suite's fixed budget.

    .venv/bin/python scripts/fuzz.py --cases 100000 [--seed 1] [--minutes M]

Same target and oracle as tests/test_reliability.py::test_fuzz_parser_and_decoder
(tests/fuzzing.py): random edits of small valid streams (bit flips, byte sets, truncations,
insertions, deletions, garbage runs, splices of two streams, absurd header fields), mostly with a
recomputed CRC, each decoded; anything but an image of the declared size or a one-line FormatError/ModelNotFound is
a failure. Before each case the input is written to ``fuzz-current.odic`` so that a crash
(segfault) leaves its reproducer behind; failures are saved as ``fuzz-failure-N.odic``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KINDS = ["flip", "set", "truncate", "insert", "delete", "garbage", "splice", "field"]


def random_mutations(rng: np.random.Generator, seeds: list[bytes]) -> list:
    """1-4 edits of one kind each; a splice continues with the tail of a random seed (CRC stripped)."""
    from tests.fuzzing import Mutation

    muts = []
    for _ in range(int(rng.integers(1, 5))):
        kind = KINDS[rng.integers(len(KINDS))]
        data = rng.bytes(int(rng.integers(0, 25)))
        if kind == "splice":
            other = seeds[int(rng.integers(len(seeds)))][:-4]
            data = other[int(rng.integers(0, len(other))):]
        muts.append(Mutation(kind, int(rng.integers(0, 5000)), int(rng.integers(0, 256)), data))
    return muts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=None, help="stop after this long (default: --cases)")
    ap.add_argument("--cases", type=int, default=100_000, help="stop after this many cases")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for reproducers")
    args = ap.parse_args()

    import torch
    from tests.fuzzing import check_stream, mutate, seed_streams

    import odic

    torch.set_num_threads(1)
    codec = odic.load()
    seeds = seed_streams(codec)
    rng = np.random.default_rng(args.seed)
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    failures = 0
    start = time.monotonic()
    end = start + 60 * args.minutes if args.minutes else float("inf")
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    current = args.out / "fuzz-current.odic"
    slowest = 0.0
    while time.monotonic() < end and sum(outcomes.values()) + failures < args.cases:
        muts = random_mutations(rng, seeds)
        kinds.update(m.kind for m in muts)
        data = mutate(seeds[int(rng.integers(len(seeds)))], muts, fix_crc=bool(rng.random() < 0.8))
        current.write_bytes(data)
        t0 = time.monotonic()
        try:
            outcomes[check_stream(codec, data)] += 1
        except AssertionError as exc:
            failures += 1
            (args.out / f"fuzz-failure-{failures}.odic").write_bytes(data)
            print(f"failure {failures}: {exc}", flush=True)
        slowest = max(slowest, time.monotonic() - t0)
    current.unlink(missing_ok=True)
    total = sum(outcomes.values()) + failures
    rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{total} cases in {(time.monotonic() - start) / 60:.1f} min (seed {args.seed}): outcomes {dict(outcomes)}; "
          f"mutations {dict(kinds)}; slowest case {slowest:.2f} s; peak RSS {rss_start // 1024} -> "
          f"{rss_end // 1024} MiB; {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
