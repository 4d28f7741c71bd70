#!/usr/bin/env python
"""Decode determinism beyond threads: encode here with 1 thread, decode in another process with 2.

Why: a learned codec whose decoder picks a different entropy table than its encoder produces
garbage. The core test checks this on one image; this script checks it on real data (Kodak and
ImageNet samples) and also compares the batched tensor path with the single-image path.

    .venv/bin/python scripts/determinism_check.py                 # Kodak (24) + 200 ImageNet
    .venv/bin/python scripts/determinism_check.py --imagenet 20   # quicker

Prints one line per category and a JSON summary; exits 1 on any mismatch. Where a GPU is
available, ``--decode-device cuda`` decodes on it (CPU encode / GPU decode).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ODIC_DATA", REPO.parent / "shared" / "data"))


def _digest(img) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(img)).tobytes()).hexdigest()


def decode_worker(folder: Path, threads: int, device: str) -> None:
    """Child process: decode every stream in ``folder`` and print {name: pixel hash} as JSON."""
    import torch

    import odic

    torch.set_num_threads(threads)
    codec = odic.load(device=device)
    out = {p.name: _digest(codec.decompress(p.read_bytes())) for p in sorted(folder.glob("*.odic"))}
    print(json.dumps({"threads": torch.get_num_threads(), "hashes": out}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=int, default=24, help="number of Kodak images (default 24)")
    ap.add_argument("--imagenet", type=int, default=200, help="number of ImageNet sample images (default 200)")
    ap.add_argument("--quality", type=float, default=50.0)
    ap.add_argument("--observer", type=float, default=0.5)
    ap.add_argument("--decode-threads", type=int, default=2)
    ap.add_argument("--decode-device", default="cpu")
    ap.add_argument("--batch", type=int, default=8, help="batch size for the batch-vs-single check")
    ap.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        decode_worker(Path(args._worker), args.decode_threads, args.decode_device)
        return 0

    import torch
    from PIL import Image

    import odic

    torch.set_num_threads(1)
    codec = odic.load()
    kodak = sorted((DATA / "kodak").glob("*.png"))[: args.kodak]
    imnet = sorted((DATA / "imagenet-sample").rglob("*.JPEG"))
    imnet = (imnet or sorted((DATA / "imagenet-sample").rglob("*.jp*g")))[: args.imagenet]
    if not kodak and not imnet:
        print(f"no data under {DATA}", file=sys.stderr)
        return 2
    t0 = time.time()
    local: dict[str, str] = {}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, path in enumerate([*kodak, *imnet]):
            data = codec.compress(path, quality=args.quality, observer=args.observer)
            name = f"{i:04d}_{path.stem}.odic"
            (folder / name).write_bytes(data)
            local[name] = _digest(codec.decompress(data))
        enc_s = time.time() - t0
        proc = subprocess.run(
            [sys.executable, __file__, "--_worker", str(folder), "--decode-threads", str(args.decode_threads),
             "--decode-device", args.decode_device],
            capture_output=True, text=True, check=True,
        )
        remote = json.loads(proc.stdout.strip().splitlines()[-1])
    for label, files in (("kodak", kodak), ("imagenet", imnet)):
        names = [n for n in local if any(n.endswith(f"_{p.stem}.odic") for p in files)]
        bad = [n for n in names if remote["hashes"].get(n) != local[n]]
        results[label] = {"images": len(names), "mismatches": len(bad), "mismatched": bad[:10]}
        print(f"{label}: {len(names)} images, encode 1 thread / decode {remote['threads']} threads "
              f"({args.decode_device}) in another process: {len(bad)} mismatches")

    # Batch vs single image: decompress_batch gives the pixels decompress gives for each stream
    # (the decoder contract). Whether compress_batch emits the same bytes as compress is reported
    # too: the encoder's float analysis may legitimately round differently in a batch.
    same_size: dict[tuple, list[Path]] = {}
    for p in imnet:
        with Image.open(p) as im:
            same_size.setdefault(im.size, []).append(p)
    n_batch = n_bad = n_bytes_differ = 0
    for paths in same_size.values():
        for k in range(0, len(paths) - 1, args.batch):
            group = paths[k : k + args.batch]
            arrs = [np.array(Image.open(p).convert("RGB")) for p in group]
            x = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrs]).float() / 255
            streams = codec.compress_batch(x, quality=args.quality, observer=args.observer)
            batch = codec.decompress_batch(streams)
            for a, s, b in zip(arrs, streams, batch, strict=True):
                n_batch += 1
                single = codec.compress(a, quality=args.quality, observer=args.observer)
                n_bytes_differ += single != s
                pix = (b * 255).round().byte().permute(1, 2, 0).numpy()
                if not np.array_equal(pix, np.asarray(codec.decompress(s))):
                    n_bad += 1
    results["batch_vs_single"] = {"images": n_batch, "mismatches": n_bad}
    print(f"batch vs single decode: {n_batch} images, {n_bad} mismatches "
          f"(encoder: {n_bytes_differ} batch streams differ in bytes from single-image streams)")
    summary = {"quality": args.quality, "observer": args.observer, "decode_device": args.decode_device,
               "seconds": round(time.time() - t0, 1), "encode_seconds": round(enc_s, 1),
               "batch_encoder_bytes_differ": n_bytes_differ, **results}
    print(json.dumps(summary))
    return 1 if any(r["mismatches"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
