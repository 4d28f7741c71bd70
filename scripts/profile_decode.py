#!/usr/bin/env python
"""Where a decode spends its time, stage by stage, beside x265's encode of the same picture.

    .venv/bin/python scripts/profile_decode.py [--threads 2] [--huge] [--repeat 5]

For kodim01 (768x512, quality 50, human observer): the decode's stages (rANS decode of z and y,
the re-encode check against forged strings, the integer hyper-synthesis, the context passes'
integer parameters, the synthesis transform,
the rest: parsing, tiling, conversion to a PIL image), the best of ``--repeat`` whole decodes,
the best encode, and x265's encode (pillow-heif, 4:4:4, quality 50, preset medium, as many
threads as odic) and decode of the same image in the same run (issue 34's yardstick).
``--huge`` adds a 6000x4000 photo-like mosaic of Kodak (one decode; takes a minute). Run it on an
idle machine: it prints one JSON line per image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image

import odic
from odic.model import rans

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from measure_huge import photo_like  # noqa: E402
from measure_speed import best_of  # noqa: E402

DATA = Path(os.environ.get("ODIC_DATA", REPO.parent / "shared" / "data"))

STAGES = defaultdict(float)


def timed(owner, name: str, label: str) -> None:
    """Wrap ``owner.name`` so that its time adds up under ``label``."""
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            STAGES[label] += time.perf_counter() - t

    setattr(owner, name, wrapper)


def profile(codec: odic.Codec, img: Image.Image, name: str, repeat: int) -> dict:
    from odic.codecs import create_codec

    hevc = create_codec("hevc", chroma="444", threads=torch.get_num_threads())  # x265 on as many threads
    data = codec.compress(img, quality=50)
    codec.decompress(data)
    STAGES.clear()
    t = time.perf_counter()
    for _ in range(repeat):
        codec.decompress(data)
    total = (time.perf_counter() - t) / repeat
    stages = {k: round(v / repeat, 4) for k, v in STAGES.items()}
    stages["rest (parse, tiling, PIL)"] = round(total - sum(stages.values()), 4)
    hevc_bytes = hevc.encode(img, 50)
    return {
        "image": name, "size": list(img.size), "bytes": len(data), "threads": torch.get_num_threads(),
        "decode_s": round(best_of(lambda: codec.decompress(data), repeat), 4),
        "encode_s": round(best_of(lambda: codec.compress(img, quality=50), repeat), 4),
        "x265_encode_s": round(best_of(lambda: hevc.encode(img, 50), repeat), 4),
        "x265_decode_s": round(best_of(lambda: hevc.decode(hevc_bytes), repeat), 4),
        "stages_s": stages,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--huge", action="store_true", help="also a 6000x4000 photo (one decode)")
    args = ap.parse_args()
    codec = odic.load(threads=args.threads)
    model = codec.model
    timed(model.entropy_bottleneck, "decompress", "z rANS decode")
    timed(model.entropy_bottleneck, "compress", "z re-encode check")
    timed(rans.Decoder, "decode", "y rANS decode")
    timed(rans, "encode", "y re-encode check")
    timed(model, "entropy_parameters", "hyper-synthesis (integer)")
    timed(model, "pass_parameters", "context passes' parameters (integer)")
    timed(model, "synthesize", "synthesis transform")
    print(json.dumps(profile(codec, Image.open(DATA / "kodak" / "kodim01.png").convert("RGB"), "kodim01", args.repeat)))
    if args.huge:
        path = Path("/tmp/odic-profile-6000x4000.png")
        if not path.exists():
            photo_like(6000, 4000, path)
        print(json.dumps(profile(codec, Image.open(path).convert("RGB"), "photo 6000x4000", 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
