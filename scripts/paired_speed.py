"""Encode/decode time of two versions of odic, paired image by image: the fair comparison on a
machine whose speed drifts (the 2-core machines here ran the same code 1.5x slower from one hour
to the next, so timings from separate runs do not compare).

    .venv/bin/python scripts/paired_speed.py ea2b054 HEAD            # two git revisions
    .venv/bin/python scripts/paired_speed.py --model odic-people HEAD~1 HEAD

Each revision is checked out (``git worktree``) into a temporary folder and served by its own
worker process; the parent hands the Kodak images to the workers in turn (alternating which goes
first), each worker reports the best of ``--repeat`` encodes and decodes of that image through the
public API (stream verification included). Prints mean and max per revision, and whether the
streams were the same bytes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import hashlib, json, sys, time
sys.path.insert(0, sys.argv[1])
import torch, odic
from PIL import Image
torch.set_num_threads(int(sys.argv[2]))
codec = odic.load(sys.argv[3] or None)
repeat, quality = int(sys.argv[4]), int(sys.argv[5])
warm = True
for line in sys.stdin:
    img = Image.open(line.strip()).convert("RGB")
    if warm:  # first call: weights converted, caches built
        codec.decompress(codec.compress(img, quality=quality))
        warm = False
    enc = dec = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        stream = codec.compress(img, quality=quality)
        enc = min(enc, time.perf_counter() - t)
        t = time.perf_counter()
        codec.decompress(stream)
        dec = min(dec, time.perf_counter() - t)
    print(json.dumps([enc, dec, hashlib.sha256(stream).hexdigest()]), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revisions", nargs=2, help="two git revisions (commits, branches, HEAD~1)")
    ap.add_argument("--kodak", default=str(REPO.parent / "shared" / "data" / "kodak"))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quality", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="", help="installed model name (default: the bundled default)")
    args = ap.parse_args()
    files = sorted(Path(args.kodak).glob("*.png"))[:args.limit]
    if not files:
        sys.exit(f"error: no PNG images in {args.kodak}")
    with tempfile.TemporaryDirectory() as tmp:
        trees = []
        try:
            for i, rev in enumerate(args.revisions):  # each added tree is removed below, even if the next fails
                tree = Path(tmp) / str(i)
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), rev],
                               check=True)
                trees.append(tree)
            workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(t / "src"), str(args.threads), args.model,
                                         str(args.repeat), str(args.quality)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for t in trees]
            rows: list[list] = [[], []]
            for n, image in enumerate(files):
                for i in ((0, 1) if n % 2 == 0 else (1, 0)):
                    workers[i].stdin.write(f"{image}\n")
                    workers[i].stdin.flush()
                    rows[i].append(json.loads(workers[i].stdout.readline()))
            for w in workers:
                w.stdin.close()
                w.wait()
        finally:
            for tree in trees:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    same = all(a[2] == b[2] for a, b in zip(*rows, strict=True))
    for rev, result in zip(args.revisions, rows, strict=True):
        enc, dec, _ = zip(*result, strict=True)
        print(f"{rev}: encode mean {statistics.mean(enc):.3f} / max {max(enc):.3f} s, "
              f"decode mean {statistics.mean(dec):.3f} / max {max(dec):.3f} s ({len(result)} images)")
    print("streams: the same bytes" if same else "streams: differ")


if __name__ == "__main__":
    main()
