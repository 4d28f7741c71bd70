"""Image codecs behind one interface, created by name: ``create_codec("hevc", chroma="420")``.

Importing this package registers every family; a codec whose library or program is missing is
still listed, and creating it raises :class:`CodecUnavailable` with a one-line reason.
"""

from . import bpg, heif, imagecodecs_codecs, odic_codec, pillow_codecs  # noqa: F401 - registration
from .base import (
    BenchCodec,
    CodecUnavailable,
    codec_from_spec,
    create_codec,
    list_codecs,
    parse_codec_spec,
    register_codec,
)

__all__ = [
    "BenchCodec",
    "CodecUnavailable",
    "codec_from_spec",
    "create_codec",
    "list_codecs",
    "parse_codec_spec",
    "register_codec",
]
