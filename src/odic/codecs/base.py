"""One small interface for every image codec the benchmark compares, and a registry by name.

Why so small: the benchmark only needs to turn an RGB image into bytes and back at a given
setting, and to say truthfully how many bytes that took and which encoder produced them. Anything
family-specific (chroma, speed, effort) is a constructor option, so ``create_codec("hevc",
chroma="420")`` and the spec string ``"hevc:chroma=420"`` mean the same thing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

Setting = float


class CodecUnavailable(RuntimeError):
    """Raised when a codec's library or program is not installed; the message says what to do."""


class BenchCodec(abc.ABC):
    """A lossy image codec with a list of settings that span its useful rate range.

    The benchmark's view of any codec, odic included; not :class:`odic.Codec`, the public API.

    Subclasses set ``name``, ``setting_name`` (what the number means, e.g. ``quality``),
    ``quality_range`` (the valid interval) and ``settings`` (the default sweep, rising in rate).
    """

    name: str = ""
    setting_name: str = "quality"
    quality_range: tuple[float, float] = (0.0, 100.0)
    settings: Sequence[Setting] = ()
    #: True when a larger setting gives more bytes (quality); False for ratio/distance settings.
    rate_increases: bool = True

    def __init__(self, settings: Sequence[Setting] | None = None, **options: Any) -> None:
        if options:
            raise TypeError(f"{self.name}: unknown option(s) {', '.join(sorted(options))}")
        if settings is not None:
            lo, hi = self.quality_range
            bad = [s for s in settings if not lo <= float(s) <= hi]
            if bad:
                raise ValueError(
                    f"{self.name}: settings {bad} outside {self.setting_name} range [{lo}, {hi}]"
                )
            self.settings = [float(s) for s in settings]

    @abc.abstractmethod
    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        """Compress an RGB image; the returned bytes are the whole file that would be stored."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> Image.Image:
        """Decode bytes produced by :meth:`encode` into an RGB image of the original size."""

    def header_bytes(self, data: bytes) -> int | None:
        """Bytes of container and headers in ``data`` that carry no image payload (None: unknown)."""
        return None

    def options(self) -> dict[str, Any]:
        """The constructor options that change the bitstream (recorded in summary.json)."""
        return {}

    def version(self) -> str:
        """The encoder library and version, for reproducibility."""
        return "unknown"

    def info(self) -> dict[str, Any]:
        """Everything summary.json records about this codec."""
        return {
            "name": self.name,
            "version": self.version(),
            "options": self.options(),
            "setting_name": self.setting_name,
            "quality_range": list(self.quality_range),
            "settings": list(self.settings),
            "container": self.container_note(),
        }

    def container_note(self) -> str:
        """One line on what headers/container the file carries besides the coded image."""
        return ""

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


def ensure_rgb(image: Image.Image) -> Image.Image:
    """Codecs are compared on 8-bit RGB; other modes are converted (alpha dropped) first."""
    return image if image.mode == "RGB" else image.convert("RGB")


_REGISTRY: dict[str, Callable[..., BenchCodec]] = {}


def register_codec(name: str) -> Callable[[Callable[..., BenchCodec]], Callable[..., BenchCodec]]:
    """Decorator registering a codec class (or factory) under ``name`` (the timm pattern)."""

    def deco(factory: Callable[..., BenchCodec]) -> Callable[..., BenchCodec]:
        if name in _REGISTRY:
            raise ValueError(f"codec '{name}' is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def list_codecs() -> list[str]:
    """Names of every registered codec (whether or not its library is installed)."""
    return sorted(_REGISTRY)


def create_codec(name: str, **options: Any) -> BenchCodec:
    """Build a codec by name; raises KeyError for unknown names, CodecUnavailable when not installed."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown codec '{name}'; known: {', '.join(list_codecs())}")
    return _REGISTRY[name](**options)


def _parse_value(text: str, as_list: bool = False) -> Any:
    """Spec values: numbers become int/float, the rest stays text; ``as_list``: ``a/b/c`` is a list
    (only the settings sweep, so a value such as ``model=runs/a/weights.pt`` stays a path)."""
    if as_list and "/" in text:
        return [_parse_value(t) for t in text.split("/") if t]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_codec_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"hevc:chroma=420:preset=slow"`` -> ``("hevc", {"chroma": 420, "preset": "slow"})``.

    ``settings=10/30/50`` (or ``q=``) overrides the default sweep. Options stay strings where the
    codec expects strings (each codec normalises its own option types).
    """
    parts = [p.strip() for p in spec.strip().split(":")]
    name, opts = parts[0], {}
    if not name:
        raise ValueError(f"empty codec name in spec '{spec}'")
    for part in parts[1:]:
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"codec option '{part}' in '{spec}' must look like key=value")
        key, value = part.split("=", 1)
        key = key.strip().replace("-", "_")
        if key == "q":
            key = "settings"
        val = _parse_value(value.strip(), as_list=key == "settings")
        if key == "settings" and not isinstance(val, list):
            val = [val]
        opts[key] = val
    return name, opts


def codec_from_spec(spec: str) -> BenchCodec:
    """Create a codec from a spec string such as ``"odic:alpha=1"`` or ``"jpeg:chroma=444"``."""
    name, opts = parse_codec_spec(spec)
    return create_codec(name, **opts)
