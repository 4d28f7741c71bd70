"""Encode/decode wall time of the bundled model on Kodak (issue 5's speed target: each under 0.5 s).

    .venv/bin/python scripts/measure_speed.py --limit 24 --threads 2 --out results/speed.json

Per image: one warm-up, then the best of ``--repeat`` runs of ``compress`` (quality, observer) and of
``decompress`` of that stream, through the public API (so the decoder's stream verification and
pixel restoration are included). Run it on an idle machine; the JSON records the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

import odic


def cpu_model() -> str:
    """The CPU's marketing name (speed differs several-fold between the machines sessions get)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("ODIC_DATA", "../shared/data") + "/kodak")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quality", type=float, default=50.0)
    ap.add_argument("--observer", default="human")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    codec = odic.load(threads=args.threads)
    rows = []
    for path in sorted(Path(args.data).glob("*.png"))[: args.limit]:
        img = Image.open(path).convert("RGB")
        data = codec.compress(img, quality=args.quality, observer=args.observer)
        codec.decompress(data)
        enc = best_of(lambda img=img: codec.compress(img, quality=args.quality, observer=args.observer), args.repeat)
        dec = best_of(lambda data=data: codec.decompress(data), args.repeat)
        rows.append({"image": path.name, "size": list(img.size), "bpp": 8 * len(data) / (img.width * img.height),
                     "encode_s": round(enc, 4), "decode_s": round(dec, 4)})
        print(json.dumps(rows[-1]), flush=True)
    summary = {
        "model_id": codec.model_id, "threads": args.threads, "quality": args.quality, "observer": args.observer,
        "cpu": cpu_model(), "torch": torch.__version__, "images": len(rows),
        "encode_mean_s": round(statistics.mean(r["encode_s"] for r in rows), 4),
        "encode_max_s": max(r["encode_s"] for r in rows),
        "decode_mean_s": round(statistics.mean(r["decode_s"] for r in rows), 4),
        "decode_max_s": max(r["decode_s"] for r in rows),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
