"""AVIF (libavif/libaom) and JPEG XL (libjxl) through imagecodecs.

pillow-heif ships no AV1 encoder, so AVIF comes from imagecodecs, as does JPEG XL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from .base import BenchCodec, CodecUnavailable, Setting, ensure_rgb, register_codec
from .heif import mdat_payload


def _imagecodecs(feature: str):  # noqa: ANN202 - module object
    try:
        import imagecodecs
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise CodecUnavailable(f"{feature}: pip install imagecodecs") from exc
    if not getattr(imagecodecs, feature.upper()).available:
        raise CodecUnavailable(f"{feature}: this imagecodecs build lacks {feature}")
    return imagecodecs


_PIXEL_FORMATS = {"444": "YUV444", "420": "YUV420"}


@register_codec("avif")
class AvifCodec(BenchCodec):
    """AVIF intra (AV1 via libavif); ``chroma`` 444 (default) or 420, ``speed`` 0 (slow)..10."""

    name = "avif"
    quality_range = (0.0, 100.0)
    settings = (2.0, 8.0, 20.0, 32.0, 44.0, 56.0, 68.0)

    def __init__(self, settings: Sequence[Setting] | None = None, chroma: str | int = "444",
                 speed: int = 6, threads: int = 1, **options: Any) -> None:
        super().__init__(settings, **options)
        self._ic = _imagecodecs("avif")
        self.chroma = str(chroma)
        if self.chroma not in _PIXEL_FORMATS:
            raise ValueError(f"avif: chroma must be 444 or 420, not {chroma!r}")
        self.speed = int(speed)
        self.threads = int(threads)

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        arr = np.ascontiguousarray(np.asarray(ensure_rgb(image)))
        fmt = getattr(self._ic.AVIF.PIXEL_FORMAT, _PIXEL_FORMATS[self.chroma])
        return bytes(self._ic.avif_encode(arr, level=int(round(setting)), speed=self.speed,
                                          pixelformat=fmt, numthreads=self.threads))

    def decode(self, data: bytes) -> Image.Image:
        return Image.fromarray(np.asarray(self._ic.avif_decode(data, numthreads=self.threads))[..., :3])

    def header_bytes(self, data: bytes) -> int | None:
        try:
            return len(data) - len(mdat_payload(data))
        except ValueError:
            return None

    def options(self) -> dict[str, Any]:
        return {"chroma": self.chroma, "speed": self.speed, "threads": self.threads}

    def version(self) -> str:
        return f"{self._ic.avif_version()} (imagecodecs {self._ic.__version__})"

    def container_note(self) -> str:
        return "HEIF/AVIF: ftyp + meta with av1C/colr/ispe/pixi (about 300 bytes) + AV1 sequence header"


@register_codec("jxl")
class JxlCodec(BenchCodec):
    """JPEG XL (libjxl, VarDCT), bare codestream; ``effort`` 1..9 (default 7)."""

    name = "jxl"
    quality_range = (0.0, 100.0)
    settings = (0.0, 10.0, 30.0, 55.0, 75.0, 88.0)

    def __init__(self, settings: Sequence[Setting] | None = None, effort: int = 7, threads: int = 1,
                 **options: Any) -> None:
        super().__init__(settings, **options)
        self._ic = _imagecodecs("jpegxl")
        self.effort = int(effort)
        self.threads = int(threads)

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        arr = np.ascontiguousarray(np.asarray(ensure_rgb(image)))
        return bytes(self._ic.jpegxl_encode(arr, level=float(setting), effort=self.effort,
                                            numthreads=self.threads))

    def decode(self, data: bytes) -> Image.Image:
        return Image.fromarray(np.asarray(self._ic.jpegxl_decode(data, numthreads=self.threads))[..., :3])

    def options(self) -> dict[str, Any]:
        return {"effort": self.effort, "threads": self.threads}

    def version(self) -> str:
        return f"{self._ic.jpegxl_version()} (imagecodecs {self._ic.__version__})"

    def container_note(self) -> str:
        return "bare JPEG XL codestream (no ISOBMFF container): a few-byte size header + frame header"
