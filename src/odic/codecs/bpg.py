"""BPG through the reference ``bpgenc`` / ``bpgdec`` programs, only when they are on PATH.

No maintained Python library wraps libbpg, so this is the one codec that runs a program. Without
the programs the codec is unavailable and says how to get them (the benchmark skips it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

from PIL import Image

from .base import BenchCodec, CodecUnavailable, Setting, ensure_rgb, register_codec


@register_codec("bpg")
class BpgCodec(BenchCodec):
    """BPG (x265 inside, 4:4:4 by default); the setting is BPG's quantiser ``-q`` 0 (best)..51."""

    name = "bpg"
    setting_name = "qp"
    quality_range = (0.0, 51.0)
    settings = (46.0, 42.0, 38.0, 34.0, 30.0, 26.0)
    rate_increases = False

    def __init__(self, settings: Sequence[Setting] | None = None, chroma: str | int = "444",
                 level: int = 8, **options: Any) -> None:
        super().__init__(settings, **options)
        self.enc, self.dec = shutil.which("bpgenc"), shutil.which("bpgdec")
        if not (self.enc and self.dec):
            raise CodecUnavailable(
                "bpg: bpgenc/bpgdec are not on PATH (build libbpg from https://bellard.org/bpg/)"
            )
        self.chroma = str(chroma)
        self.level = int(level)

    def _run(self, args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True)

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "in.png"), os.path.join(tmp, "out.bpg")
            ensure_rgb(image).save(src)
            self._run([self.enc, "-q", str(int(round(setting))), "-f", self.chroma, "-m", str(self.level),
                       "-o", dst, src])
            with open(dst, "rb") as fh:
                return fh.read()

    def decode(self, data: bytes) -> Image.Image:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "in.bpg"), os.path.join(tmp, "out.png")
            with open(src, "wb") as fh:
                fh.write(data)
            self._run([self.dec, "-o", dst, src])
            with Image.open(dst) as im:
                return im.convert("RGB")

    def options(self) -> dict[str, Any]:
        return {"chroma": self.chroma, "level": self.level}

    def version(self) -> str:
        out = subprocess.run([self.enc, "-h"], capture_output=True, text=True)
        first = (out.stdout or out.stderr).strip().splitlines()
        return first[0] if first else "bpgenc"

    def container_note(self) -> str:
        return "BPG header (magic, size, format: about 6-10 bytes) + HEVC parameter sets and slices"
