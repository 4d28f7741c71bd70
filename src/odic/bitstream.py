"""The ``.odic`` container: a versioned header, entropy-coded strings, a CRC32.

Everything is validated before anything is allocated: the CRC first, then every header field
against hard bounds, then the declared string lengths against the bytes actually present.
docs/format.md describes the layout byte by byte; keep the two in step.

Layout (all integers big-endian)::

    0   4  magic  b"ODIC"
    4   1  format version (FORMAT_VERSION)
    5   1  flags: bit 0 = an alpha plane follows the tiles (zlib);
                  bit 1 = tiles overlap by TILE_MARGIN px on each side (tiled streams only);
                  other bits must be 0
    6   1  original colour mode (ColorMode)
    7   1  n = length of the model id (1..64)
    8   n  model id, printable ASCII without spaces (0x21-0x7E)
    .   8  weights hash (first 8 bytes of SHA-256 of the model's state dict)
    .   4  width   (1..MAX_DIMENSION)
    .   4  height  (1..MAX_DIMENSION)
    .   2  quality code (0..10000: quality 0..100 in steps of 0.01)
    .   2  observer code (0..1000: alpha 0..1 in steps of 0.001)
    .   2  tile size in units of 64 px (0 = one tile for the whole image)
    .      per tile, in raster order: 4-byte length + y string, 4-byte length + z string
           (with flags bit 1, tiles sit every tile size - 2 * TILE_MARGIN px and each tile's strings
           code its box grown by TILE_MARGIN px on every side where the image goes on, so an interior
           tile codes exactly tile size px; the decoder keeps the box, see :func:`coded_box`)
    .      if flags bit 0: 4-byte length + zlib-compressed alpha plane (height x width bytes)
    -4  4  CRC32 of every byte before it
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

MAGIC = b"ODIC"
FORMAT_VERSION = 1
MAX_DIMENSION = 65535
MODEL_STRIDE = 64
MAX_MODEL_ID = 64
#: Fixed-point resolution of the condition codes: quality 0..100 in steps of 0.01 (q = code / 10000),
#: observer 0..1 in steps of 0.001. The model conditions on exactly these codes.
QUALITY_CODE_MAX = 10000
ALPHA_CODE_MAX = 1000
#: Largest tile (or untiled image) in pixels. Decoding memory grows with the tile, not the image,
#: so this bound is what keeps a hostile header from asking for gigabytes; encoders tile above it.
MAX_TILE_PIXELS = 2048 * 2048
#: A tile's y + z strings may hold at most this many bytes per (padded) pixel, plus a constant:
#: far above any real rate (64 bpp), it bounds the work the rANS decoder can be made to do.
MAX_STRING_BYTES_PER_PIXEL = 8
STRING_SLACK_BYTES = 4096
FLAG_ALPHA = 0x01
#: Tiles overlap their neighbours by TILE_MARGIN px and the decoder crops it away: a learned
#: transform reconstructs the outer 2-4 px of any image worse (less context), so tiles that end
#: exactly at their borders would show seams. 8 px is twice the measured reach (docs/format.md).
FLAG_TILE_MARGIN = 0x02
TILE_MARGIN = 8
_KNOWN_FLAGS = FLAG_ALPHA | FLAG_TILE_MARGIN


class FormatError(ValueError):
    """The bytes are not a valid .odic stream; the message names the problem."""


class ColorMode(IntEnum):
    """What the original image was, so decoding can give the same kind back."""

    RGB = 0
    L = 1  # 8-bit grayscale, coded as RGB with equal channels, decoded back to L
    RGBA = 2  # RGB coded lossy, alpha plane kept losslessly (zlib)
    LA = 3
    I16 = 4  # 16-bit grayscale; coded at 8 bits, decoded to 16 bits (value * 257)
    RGB16 = 5  # 16-bit RGB (numpy input); coded and decoded at 8 bits


@dataclass
class Header:
    model_id: str
    weights_hash: bytes
    width: int
    height: int
    quality_code: int
    alpha_code: int
    mode: ColorMode = ColorMode.RGB
    tile_units: int = 0
    flags: int = 0
    version: int = FORMAT_VERSION

    @property
    def quality(self) -> float:
        return self.quality_code * 100.0 / QUALITY_CODE_MAX

    @property
    def observer(self) -> float:
        return self.alpha_code / ALPHA_CODE_MAX

    @property
    def tile_size(self) -> int:
        """Side of a coded tile (a multiple of the model stride, so interior tiles need no padding)."""
        return self.tile_units * MODEL_STRIDE

    @property
    def tile_step(self) -> int:
        """Distance between tiles: the coded side less the two margins it shares with its neighbours."""
        return self.tile_size - (2 * TILE_MARGIN if self.flags & FLAG_TILE_MARGIN else 0)

    def tile_grid(self) -> tuple[int, int]:
        """(rows, cols) of tiles covering the image."""
        if self.tile_units == 0:
            return 1, 1
        return math.ceil(self.height / self.tile_step), math.ceil(self.width / self.tile_step)

    def to_dict(self) -> dict:
        rows, cols = self.tile_grid()
        return {
            "format_version": self.version,
            "model_id": self.model_id,
            "weights_hash": self.weights_hash.hex(),
            "width": self.width,
            "height": self.height,
            "mode": self.mode.name,
            "quality": self.quality,
            "observer": self.observer,
            "tile_size": self.tile_size or None,
            "tile_margin": TILE_MARGIN if self.flags & FLAG_TILE_MARGIN else 0,
            "tiles": rows * cols,
            "alpha_plane": bool(self.flags & FLAG_ALPHA),
        }


@dataclass
class Stream:
    header: Header
    tiles: list[tuple[bytes, bytes]]  # (y string, z string) per tile
    alpha_plane: bytes | None = None  # zlib-compressed, only with FLAG_ALPHA
    nbytes: int = field(default=0)


def valid_model_id(model_id: str) -> bool:
    """1..64 characters of printable ASCII without spaces: a newline in an id would break one-line errors."""
    return 1 <= len(model_id) <= MAX_MODEL_ID and all("!" <= c <= "~" for c in model_id)


def _validate_header(h: Header, max_pixels: int | None) -> None:
    if h.version != FORMAT_VERSION:
        raise FormatError(f"unsupported format version {h.version} (this odic reads version {FORMAT_VERSION})")
    if h.flags & ~_KNOWN_FLAGS:
        raise FormatError(f"unknown flags 0x{h.flags:02x}")
    if not (1 <= h.width <= MAX_DIMENSION and 1 <= h.height <= MAX_DIMENSION):
        raise FormatError(f"image size {h.width}x{h.height} out of range")
    if max_pixels is not None and h.width * h.height > max_pixels:
        raise FormatError(
            f"image of {h.width}x{h.height} = {h.width * h.height} pixels exceeds the limit of "
            f"{max_pixels} (odic.set_max_pixels / --max-pixels)"
        )
    if h.tile_units == 0 and h.width * h.height > MAX_TILE_PIXELS:
        raise FormatError(
            f"untiled image of {h.width}x{h.height} exceeds {MAX_TILE_PIXELS} pixels per tile; it must be tiled"
        )
    if h.flags & FLAG_TILE_MARGIN and not h.tile_units:
        raise FormatError("tile margin flag set on an untiled stream")
    if h.tile_units and h.tile_size * h.tile_size > MAX_TILE_PIXELS:
        raise FormatError(f"tile size {h.tile_size} exceeds {MAX_TILE_PIXELS} pixels per tile")
    if not 0 <= h.quality_code <= QUALITY_CODE_MAX:
        raise FormatError(f"quality code {h.quality_code} out of range")
    if not 0 <= h.alpha_code <= ALPHA_CODE_MAX:
        raise FormatError(f"observer code {h.alpha_code} out of range")
    if not 1 <= len(h.model_id) <= MAX_MODEL_ID:
        raise FormatError("model id length out of range")
    if not valid_model_id(h.model_id):
        raise FormatError("model id has a character that is not printable ASCII (0x21-0x7E)")
    if bool(h.flags & FLAG_ALPHA) != (h.mode in (ColorMode.RGBA, ColorMode.LA)):
        raise FormatError("alpha flag does not match the colour mode")


def pack(stream: Stream, max_pixels: int | None = None) -> bytes:
    h = stream.header
    _validate_header(h, max_pixels)
    rows, cols = h.tile_grid()
    if len(stream.tiles) != rows * cols:
        raise ValueError(f"expected {rows * cols} tiles, got {len(stream.tiles)}")
    mid = h.model_id.encode("ascii")
    if len(h.weights_hash) != 8:
        raise ValueError("weights hash must be 8 bytes")
    parts = [
        MAGIC,
        struct.pack(">BBBB", h.version, h.flags, int(h.mode), len(mid)),
        mid,
        h.weights_hash,
        struct.pack(">IIHHH", h.width, h.height, h.quality_code, h.alpha_code, h.tile_units),
    ]
    for y, z in stream.tiles:
        parts += [struct.pack(">I", len(y)), y, struct.pack(">I", len(z)), z]
    if h.flags & FLAG_ALPHA:
        if stream.alpha_plane is None:
            raise ValueError("alpha flag set but no alpha plane")
        parts += [struct.pack(">I", len(stream.alpha_plane)), stream.alpha_plane]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise FormatError(f"truncated stream: {what} needs {n} bytes, {self.end - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def read_header(data: bytes, max_pixels: int | None = None) -> tuple[Header, _Reader]:
    """Check magic, CRC and every header field; return the header and a reader at the tiles."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes")
    data = bytes(data)
    if len(data) == 0:
        raise FormatError("empty stream")
    if data[:4] != MAGIC[: min(4, len(data))] or len(data) < 4:
        raise FormatError("not an odic stream (bad magic)")
    if len(data) > 4 and data[4] != FORMAT_VERSION:
        # Before the CRC: a future version may change everything after this byte, CRC included.
        raise FormatError(f"unsupported format version {data[4]} (this odic reads version {FORMAT_VERSION})")
    if len(data) < 4 + 4 + 1 + 8 + 14 + 4:
        raise FormatError("truncated stream: shorter than the smallest header")
    (crc,) = struct.unpack(">I", data[-4:])
    if zlib.crc32(data[:-4]) != crc:
        # A stream followed by anything (e.g. two concatenated files) also ends up here.
        raise FormatError("CRC mismatch: the stream is corrupted, truncated or has trailing bytes")
    r = _Reader(data, len(data) - 4)
    r.take(4, "magic")
    version, flags, mode, id_len = r.unpack(">BBBB", "header")
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported format version {version} (this odic reads version {FORMAT_VERSION})")
    try:
        mode_enum = ColorMode(mode)
    except ValueError:
        raise FormatError(f"unknown colour mode {mode}") from None
    if not 1 <= id_len <= MAX_MODEL_ID:
        raise FormatError(f"model id length {id_len} out of range")
    try:
        model_id = r.take(id_len, "model id").decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("model id is not ASCII") from None
    weights_hash = r.take(8, "weights hash")
    width, height, qcode, acode, tile_units = r.unpack(">IIHHH", "image fields")
    header = Header(model_id, weights_hash, width, height, qcode, acode, mode_enum, tile_units, flags, version)
    _validate_header(header, max_pixels)
    return header, r


def unpack(data: bytes, max_pixels: int | None = None) -> Stream:
    """Parse and validate a whole stream; no string is copied before its length is checked."""
    header, r = read_header(data, max_pixels)
    rows, cols = header.tile_grid()
    tiles = []
    for i, box in enumerate(tile_boxes(header)):
        limit = max_string_bytes(*coded_box(header, box)[2:])
        (ny,) = r.unpack(">I", f"tile {i} y length")
        if ny > limit:
            raise FormatError(f"tile {i} y string length {ny} exceeds the {limit} bytes its size allows")
        y = r.take(ny, f"tile {i} y string")
        (nz,) = r.unpack(">I", f"tile {i} z length")
        if ny + nz > limit:
            raise FormatError(f"tile {i} z string length {nz} exceeds the {limit - ny} bytes its size allows")
        z = r.take(nz, f"tile {i} z string")
        tiles.append((y, z))
    alpha = None
    if header.flags & FLAG_ALPHA:
        (na,) = r.unpack(">I", "alpha length")
        alpha = r.take(na, "alpha plane")
    if r.pos != r.end:
        raise FormatError(f"{r.end - r.pos} unexpected bytes after the last string")
    return Stream(header, tiles, alpha, nbytes=len(data))


def tile_boxes(header: Header) -> Iterator[tuple[int, int, int, int]]:
    """(top, left, height, width) of each tile in raster order, as the strings are stored."""
    if header.tile_units == 0:
        yield 0, 0, header.height, header.width
        return
    t = header.tile_step
    rows, cols = header.tile_grid()
    for r in range(rows):
        for c in range(cols):
            top, left = r * t, c * t
            yield top, left, min(t, header.height - top), min(t, header.width - left)


def coded_box(header: Header, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) that a tile's strings code: its box grown by the margin, in the image."""
    top, left, th, tw = box
    if not header.flags & FLAG_TILE_MARGIN:
        return box
    t, lf = max(0, top - TILE_MARGIN), max(0, left - TILE_MARGIN)
    bottom, right = min(header.height, top + th + TILE_MARGIN), min(header.width, left + tw + TILE_MARGIN)
    return t, lf, bottom - t, right - lf


def max_string_bytes(height: int, width: int) -> int:
    """Upper bound on y + z bytes of a tile: real streams stay orders of magnitude below it."""
    padded = math.ceil(height / MODEL_STRIDE) * math.ceil(width / MODEL_STRIDE) * MODEL_STRIDE**2
    return MAX_STRING_BYTES_PER_PIXEL * padded + STRING_SLACK_BYTES


def quality_to_code(quality: float) -> int:
    if not (isinstance(quality, (int, float)) and 0 <= quality <= 100) or math.isnan(quality):
        raise ValueError(f"quality must be a number in [0, 100], got {quality!r}")
    return int(round(quality * QUALITY_CODE_MAX / 100))


def observer_to_code(mix: float) -> int:
    if not (isinstance(mix, (int, float)) and 0 <= mix <= 1) or math.isnan(mix):
        raise ValueError(f"observer must be in [0, 1] (or 'human' / 'machine'), got {mix!r}")
    return int(round(mix * ALPHA_CODE_MAX))


def deflate_alpha_plane(plane: bytes) -> bytes:
    """The transparency plane (height x width bytes) as the stream stores it (zlib, lossless)."""
    return zlib.compress(plane, 9)


def inflate_alpha_plane(blob: bytes | None, header: Header) -> bytes:
    """The transparency plane of a stream, inflated no further than its declared size."""
    n = header.width * header.height
    try:
        raw = zlib.decompressobj().decompress(blob or b"", n + 1)  # bounded: never inflate more than the plane
    except zlib.error:
        raise FormatError("alpha plane is corrupted") from None
    if len(raw) != n:
        raise FormatError("alpha plane has the wrong size")
    return raw
