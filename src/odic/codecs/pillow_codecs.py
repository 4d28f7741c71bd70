"""JPEG (4:2:0 and 4:4:4), WebP and JPEG 2000 through Pillow's bundled libraries.

Pillow links libjpeg-turbo, libwebp and OpenJPEG, so these need nothing beyond Pillow itself.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from typing import Any

from PIL import Image, features

from .base import BenchCodec, CodecUnavailable, Setting, ensure_rgb, register_codec


def _save(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    ensure_rgb(image).save(buf, fmt, **params)
    return buf.getvalue()


def _open_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.convert("RGB")


_CHROMA = {"420": 2, "422": 1, "444": 0}


@register_codec("jpeg")
class JpegCodec(BenchCodec):
    """Baseline JPEG (libjpeg-turbo); ``chroma`` 420 (the usual default) or 444; optimised Huffman."""

    name = "jpeg"
    quality_range = (1.0, 100.0)
    settings = (3.0, 8.0, 15.0, 30.0, 50.0, 75.0)

    def __init__(self, settings: Sequence[Setting] | None = None, chroma: str | int = "420",
                 optimize: bool | int = True, **options: Any) -> None:
        super().__init__(settings, **options)
        self.chroma = str(chroma)
        if self.chroma not in _CHROMA:
            raise ValueError(f"jpeg: chroma must be one of {', '.join(_CHROMA)}, not {chroma!r}")
        self.optimize = bool(optimize)

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        return _save(image, "JPEG", quality=int(round(setting)), subsampling=_CHROMA[self.chroma],
                     optimize=self.optimize)

    def decode(self, data: bytes) -> Image.Image:
        return _open_rgb(data)

    def header_bytes(self, data: bytes) -> int | None:
        """Markers, tables and the frame/scan headers up to the first entropy-coded byte, plus EOI."""
        pos = 2
        while pos + 4 <= len(data):
            marker, length = struct.unpack(">HH", data[pos : pos + 4])
            pos += 2 + length
            if marker == 0xFFDA:  # start of scan: entropy-coded data follows
                return pos + 2
        return None

    def options(self) -> dict[str, Any]:
        return {"chroma": self.chroma, "optimize": self.optimize}

    def version(self) -> str:
        turbo = features.version("libjpeg_turbo") or "?"
        return f"libjpeg-turbo {turbo}, libjpeg API {features.version('jpg')} (Pillow {Image.__version__})"

    def container_note(self) -> str:
        return "JFIF APP0 + quantisation/Huffman tables + frame/scan headers (about 300-600 bytes)"


@register_codec("webp")
class WebpCodec(BenchCodec):
    """Lossy WebP (libwebp, VP8 intra, always 4:2:0); ``method`` 0-6 trades speed for size."""

    name = "webp"
    quality_range = (0.0, 100.0)
    settings = (0.0, 8.0, 25.0, 50.0, 75.0, 90.0)

    def __init__(self, settings: Sequence[Setting] | None = None, method: int = 6,
                 **options: Any) -> None:
        super().__init__(settings, **options)
        if not features.check("webp"):
            raise CodecUnavailable("webp: this Pillow was built without libwebp")
        self.method = int(method)

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        return _save(image, "WEBP", quality=float(setting), method=self.method)

    def decode(self, data: bytes) -> Image.Image:
        return _open_rgb(data)

    def header_bytes(self, data: bytes) -> int | None:
        """RIFF header (12) + chunk header (8) + VP8 frame header (10) for a simple lossy file."""
        return 30 if data[12:16] == b"VP8 " else None

    def options(self) -> dict[str, Any]:
        return {"method": self.method}

    def version(self) -> str:
        return f"libwebp {features.version('webp')} (Pillow {Image.__version__})"

    def container_note(self) -> str:
        return "RIFF/WEBP + VP8 chunk header (30 bytes)"


@register_codec("jpeg2000")
class Jpeg2000Codec(BenchCodec):
    """JPEG 2000 (OpenJPEG), 9/7 wavelet with the YCbCr colour transform, bare J2K codestream.

    Pillow's default is no colour transform (``mct=0``: R, G, B coded separately), which costs
    about 4 dB on Kodak at 1 bpp; ``mct=1`` is what OpenJPEG's own tools use for RGB.

    The setting is the compression ratio against 24-bit RGB, so bpp is about 24 / ratio.
    """

    name = "jpeg2000"
    setting_name = "ratio"
    quality_range = (1.0, 2000.0)
    settings = (240.0, 160.0, 100.0, 60.0, 36.0, 20.0)
    rate_increases = False

    def __init__(self, settings: Sequence[Setting] | None = None, **options: Any) -> None:
        super().__init__(settings, **options)
        if not features.check("jpg_2000"):
            raise CodecUnavailable("jpeg2000: this Pillow was built without OpenJPEG")

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        return _save(image, "JPEG2000", quality_mode="rates", quality_layers=[float(setting)],
                     irreversible=True, mct=1, no_jp2=True)

    def decode(self, data: bytes) -> Image.Image:
        return _open_rgb(data)

    def options(self) -> dict[str, Any]:
        return {"irreversible": True, "mct": 1, "layers": 1}

    def version(self) -> str:
        return f"OpenJPEG {features.version('jpg_2000')} (Pillow {Image.__version__})"

    def container_note(self) -> str:
        return "bare J2K codestream: SIZ/COD/QCD main header (about 50-100 bytes), no JP2 boxes"
