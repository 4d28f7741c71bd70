#!/usr/bin/env python
"""Peak memory and time for a 24-megapixel image, and tiled-vs-untiled PSNR (seams).

    .venv/bin/python scripts/measure_huge.py [--width 6000 --height 4000] [--threads 1]

Why a script and not a test: it takes minutes. Compression and decompression each run in a fresh
child process, so ``ru_maxrss`` is that step's own peak RSS (model and torch included). The seam
check codes a 1536x1024 mosaic of four Kodak images whole and in 1024 / 512 px tiles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ODIC_DATA", REPO.parent / "shared" / "data"))

CHILD = r"""
import sys, time, resource, json, torch
torch.set_num_threads(int(sys.argv[4]))
import odic
codec = odic.load()
t = time.time()
if sys.argv[1] == "compress":
    data = codec.compress(sys.argv[2], quality=50)
    open(sys.argv[3], "wb").write(data)
    extra = {"bytes": len(data)}
else:
    img = codec.decompress(open(sys.argv[2], "rb").read())
    img.save(sys.argv[3])
    extra = {"size": img.size}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.time() - t, "peak_rss_mb": rss, **extra}))
"""


def photo_like(width: int, height: int, path: Path) -> None:
    """A 24 MP test photo: Kodak images tiled and slightly varied (real texture, not noise)."""
    import numpy as np
    from PIL import Image

    kodak = sorted((DATA / "kodak").glob("*.png"))
    canvas = np.zeros((height, width, 3), np.uint8)
    k = 0
    for top in range(0, height, 512):
        for left in range(0, width, 768):
            im = np.asarray(Image.open(kodak[k % len(kodak)]).convert("RGB"))
            k += 1
            if im.shape[0] > im.shape[1]:
                im = im.transpose(1, 0, 2)
            h, w = min(512, height - top), min(768, width - left)
            canvas[top : top + h, left : left + w] = im[:h, :w]
    Image.fromarray(canvas).save(path)


def seams() -> list[dict]:
    import numpy as np
    import torch
    from PIL import Image

    import odic

    torch.set_num_threads(1)
    codec = odic.load()
    ims = [np.asarray(Image.open(DATA / "kodak" / f"kodim{i:02d}.png").convert("RGB")) for i in (1, 5, 13, 23)]
    img = np.concatenate([np.concatenate(ims[:2], 1), np.concatenate(ims[2:], 1)], 0)  # 1024 x 1536

    def psnr(a, b):
        return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))

    rows = []
    for q in (30, 70):
        base = None
        for tile in (0, 1024, 512):
            data = codec.compress(img, quality=q, tile=tile)
            out = np.asarray(codec.decompress(data))
            p = psnr(img, out)
            base = p if tile == 0 else base
            rows.append({"quality": q, "tile": tile or None, "bpp": len(data) * 8 / img.shape[0] / img.shape[1],
                         "psnr": round(p, 3), "delta_db": round(p - base, 3)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-seams", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, mid, dst = Path(tmp) / "big.png", Path(tmp) / "big.odic", Path(tmp) / "back.png"
        photo_like(args.width, args.height, src)
        result = {"image": f"{args.width}x{args.height}", "threads": args.threads}
        for step, a, b in (("compress", src, mid), ("decompress", mid, dst)):
            proc = subprocess.run([sys.executable, "-c", CHILD, step, str(a), str(b), str(args.threads)],
                                  capture_output=True, text=True, check=True)
            result[step] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(step, json.dumps(result[step]), flush=True)
    if not args.skip_seams:
        result["seams"] = seams()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
