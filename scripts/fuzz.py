#!/usr/bin/env python
"""Longer fuzzing of the .odic parser and decoder than the test suite's fixed budget.

    .venv/bin/python scripts/fuzz.py --cases 100000 [--jobs 2] [--seed 1] [--minutes M]

Same target and oracle as tests/test_reliability.py::test_fuzz_parser_and_decoder
(tests/fuzzing.py): random edits of small valid streams (bit flips, byte sets, truncations,
insertions, deletions, garbage runs, splices of two streams, absurd header fields), mostly with a
recomputed CRC, each decoded; anything but an image of the declared size or a one-line FormatError/ModelNotFound is
a failure. Before each case the input is written to ``fuzz-current[-JOB].odic`` so that a crash
(segfault) leaves its reproducer behind; failures are saved as ``fuzz-failure[-JOB]-N.odic``.
``--jobs N`` runs N processes (seeds seed .. seed + N - 1), each on one thread.
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


def run_worker(seed: int, cases: int, end: float, out: Path, progress_minutes: float, tag: str) -> dict:
    """One process's share: ``cases`` cases from ``seed`` until ``end``; returns its counts."""
    import torch
    from tests.fuzzing import check_stream, mutate, seed_streams

    import odic

    torch.set_num_threads(1)
    codec = odic.load()
    seeds = seed_streams(codec)
    rng = np.random.default_rng(seed)
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    failures = 0
    start = next_report = time.monotonic()
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    current = out / f"fuzz-current{tag}.odic"
    slowest = 0.0
    while time.monotonic() < end and sum(outcomes.values()) + failures < cases:
        muts = random_mutations(rng, seeds)
        kinds.update(m.kind for m in muts)
        data = mutate(seeds[int(rng.integers(len(seeds)))], muts, fix_crc=bool(rng.random() < 0.8))
        current.write_bytes(data)
        t0 = time.monotonic()
        try:
            outcomes[check_stream(codec, data)] += 1
        except AssertionError as exc:
            failures += 1
            (out / f"fuzz-failure{tag}-{failures}.odic").write_bytes(data)
            print(f"failure {failures}{tag}: {exc}", flush=True)
        slowest = max(slowest, time.monotonic() - t0)
        if time.monotonic() >= next_report + 60 * progress_minutes:
            next_report = time.monotonic()
            print(f"[seed {seed}] {sum(outcomes.values()) + failures} cases, {(next_report - start) / 60:.1f} min, "
                  f"{failures} failures", flush=True)
    current.unlink(missing_ok=True)
    return {"outcomes": outcomes, "kinds": kinds, "failures": failures, "slowest": slowest,
            "rss_mib": (rss_start // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=None, help="stop after this long (default: --cases)")
    ap.add_argument("--cases", type=int, default=100_000, help="stop after this many cases (all jobs together)")
    ap.add_argument("--seed", type=int, default=1, help="job i uses seed + i")
    ap.add_argument("--jobs", type=int, default=1, help="processes, one thread each")
    ap.add_argument("--progress-minutes", type=float, default=10.0, help="a progress line this often, per job")
    ap.add_argument("--out", type=Path, default=Path("."), help="folder for reproducers")
    args = ap.parse_args()

    start = time.monotonic()
    end = start + 60 * args.minutes if args.minutes else float("inf")
    shares = [args.cases // args.jobs + (i < args.cases % args.jobs) for i in range(args.jobs)]
    work = [(args.seed + i, shares[i], end, args.out, args.progress_minutes, f"-{i}" if args.jobs > 1 else "")
            for i in range(args.jobs)]
    if args.jobs == 1:
        results = [run_worker(*work[0])]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = list(pool.map(run_worker, *zip(*work, strict=True)))
        except BrokenProcessPool:
            print(f"a job died (a crash): its input is in {args.out}/fuzz-current-JOB.odic", flush=True)
            return 1
    outcomes = sum((r["outcomes"] for r in results), Counter())
    kinds = sum((r["kinds"] for r in results), Counter())
    failures = sum(r["failures"] for r in results)
    total = sum(outcomes.values()) + failures
    print(f"{total} cases in {(time.monotonic() - start) / 60:.1f} min ({args.jobs} job(s), seeds {args.seed}.."
          f"{args.seed + args.jobs - 1}): outcomes {dict(outcomes)}; mutations {dict(kinds)}; slowest case "
          f"{max(r['slowest'] for r in results):.2f} s; peak RSS per job "
          f"{', '.join(f'{a} -> {b}' for a, b in (r['rss_mib'] for r in results))} MiB; {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
