"""Fuzz target for the .odic parser and decoder, shared by the test suite and scripts/fuzz.py.

Why a shared oracle: whatever bytes arrive, ``decompress`` must either return an image of the
size its header declares or raise :class:`FormatError` / :class:`ModelNotFound` (one line), in
bounded time, and never crash the process. Mutations usually recompute the CRC so the parser's
own checks and the entropy decoder are exercised, not only the checksum.
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from odic.bitstream import FormatError, read_header
from odic.weights import ModelNotFound

from .conftest import smooth_image

#: Seconds one decode may take on the small seeds (generous: the CPU is shared).
CASE_SECONDS = 20.0


def seed_streams(codec) -> list[bytes]:
    """Small valid streams covering the layout's branches: RGB, RGBA (alpha plane), tiled, gray."""
    rgba = np.dstack([smooth_image(20, 30, 1), (np.arange(600) % 251).reshape(20, 30).astype(np.uint8)])
    return [
        codec.compress(smooth_image(48, 64, 0), quality=40),
        codec.compress(Image.fromarray(rgba), quality=60, observer=1),
        codec.compress(smooth_image(70, 90, 2), quality=20, tile=64),
        codec.compress(smooth_image(9, 5, 3)[..., 0], quality=90),
    ]


def with_crc(body: bytes) -> bytes:
    """``body`` (a stream without its CRC) followed by a valid CRC32."""
    return body + struct.pack(">I", zlib.crc32(body))


#: Values a hostile header puts into a field of 1, 2 or 4 bytes: the ends of each range and just past them.
ABSURD_VALUES = {1: (0, 1, 2, 0x7F, 0xFF), 2: (0, 1, 10000, 10001, 0xFFFF), 4: (0, 1, 65535, 65536, 0xFFFFFFFF)}


def header_fields(b: bytes | bytearray) -> list[tuple[int, int]]:
    """(offset, size) of each fixed header field, following the model id length byte (docs/format.md)."""
    n = b[7] if len(b) > 7 else 0
    after_id = 8 + n + 8  # id, then the 8-byte weights hash
    return [(4, 1), (5, 1), (6, 1), (7, 1), (after_id, 4), (after_id + 4, 4), (after_id + 8, 2),
            (after_id + 10, 2), (after_id + 12, 2)]


@dataclass
class Mutation:
    """One edit of a stream's bytes; ``pos`` is taken modulo the length.

    ``splice`` keeps the first ``pos`` bytes and continues with ``data`` (the tail of another
    stream); ``field`` writes an absurd value (:data:`ABSURD_VALUES`, picked by ``value``) into the
    header field number ``pos``.
    """

    kind: str  # flip | set | truncate | insert | delete | garbage | splice | field
    pos: int
    value: int = 0
    data: bytes = b""

    def apply(self, b: bytearray) -> bytearray:
        n = len(b)
        p = self.pos % (n + 1)
        if self.kind == "field":
            fields = header_fields(b)
            offset, size = fields[self.pos % len(fields)]
            if offset + size <= n:
                choices = ABSURD_VALUES[size]
                b[offset : offset + size] = choices[self.value % len(choices)].to_bytes(size, "big")
        elif self.kind == "splice":
            b[p:] = self.data
        elif self.kind == "flip" and n:
            b[p % n] ^= 1 << (self.value % 8)
        elif self.kind == "set" and n:
            b[p % n] = self.value % 256
        elif self.kind == "truncate":
            del b[p:]
        elif self.kind == "insert":
            b[p:p] = self.data
        elif self.kind == "delete":
            del b[p : p + 1 + self.value % 64]
        elif self.kind == "garbage":
            b[p : p + len(self.data)] = self.data
        return b


def mutate(seed: bytes, mutations: list[Mutation], fix_crc: bool) -> bytes:
    """Apply the edits to the body (CRC stripped) and, if asked, append a recomputed CRC."""
    body = mutate_raw(bytearray(seed[:-4]), mutations)
    return with_crc(bytes(body)) if fix_crc else bytes(body) + seed[-4:]


def mutate_raw(b: bytearray, mutations: list[Mutation]) -> bytearray:
    for m in mutations:
        b = m.apply(b)
    return b


def check_stream(codec, data: bytes) -> str:
    """The oracle: returns 'ok' or the error class name; raises AssertionError on a violation."""
    t0 = time.monotonic()
    try:
        img = codec.decompress(data)
    except (FormatError, ModelNotFound) as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, f"error message must be one line: {msg!r}"
        outcome = type(exc).__name__
    else:
        header, _ = read_header(data, None)
        assert img.size == (header.width, header.height)
        outcome = "ok"
    try:
        codec.info(data)
    except FormatError:
        pass
    elapsed = time.monotonic() - t0
    assert elapsed < CASE_SECONDS, f"decoding took {elapsed:.1f} s"
    return outcome
