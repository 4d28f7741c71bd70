"""HEVC (x265) in HEIF through pillow-heif, and ``hevc-raw``: the same stream without the container.

At low rates the HEIF boxes (ftyp + meta, about 370 bytes: 0.045 bpp on a 256x256 crop) are a
large share of the file, and BPG does not carry them. ``hevc-raw`` therefore counts only what a
container-free HEVC still file needs: the VPS/SPS/PPS parameter sets, the coded slice NAL units
(the mdat payload, 4-byte length-prefixed as in the HEIF) and a 5-byte size/chroma header, which
is about what a BPG file holds. To decode it, a HEIF file is rebuilt around those bytes.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from .base import BenchCodec, CodecUnavailable, Setting, ensure_rgb, register_codec

_CHROMAS = ("444", "420")


def _import_pillow_heif():  # noqa: ANN202 - module object
    try:
        import pillow_heif
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise CodecUnavailable("hevc: pip install pillow-heif") from exc
    return pillow_heif


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, payload_start, box_end)`` for each ISO-BMFF box in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack(">I4s", data[pos : pos + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr or pos + size > end:
            raise ValueError(f"corrupt ISO-BMFF box {typ!r} at offset {pos}")
        yield typ, pos + hdr, pos + size
        pos += size


def _find(data: bytes, path: Sequence[bytes], start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Locate a nested box by type path; ``meta`` is a full box (4 more header bytes)."""
    for typ, p0, p1 in iter_boxes(data, start, end):
        if typ == path[0]:
            if len(path) == 1:
                return p0, p1
            return _find(data, path[1:], p0 + (4 if typ == b"meta" else 0), p1)
    raise ValueError(f"box {b'/'.join(path)!r} not found")


def mdat_payload(data: bytes) -> bytes:
    """The coded image bytes of a single-image HEIF/AVIF file."""
    p0, p1 = _find(data, [b"mdat"])
    return data[p0:p1]


def hvcc_parameter_sets(data: bytes) -> list[bytes]:
    """VPS, SPS and PPS NAL units (without length prefixes) from the hvcC box of a HEIF file."""
    p0, p1 = _find(data, [b"meta", b"iprp", b"ipco", b"hvcC"])
    cfg = data[p0:p1]
    pos, nals = 23, []
    for _ in range(cfg[22]):
        count = struct.unpack(">H", cfg[pos + 1 : pos + 3])[0]
        pos += 3
        for _ in range(count):
            n = struct.unpack(">H", cfg[pos : pos + 2])[0]
            nals.append(cfg[pos + 2 : pos + 2 + n])
            pos += 2 + n
    return nals


def _unescape(nal: bytes) -> bytes:
    """Remove HEVC emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


class _Bits:
    """MSB-first bit reader with Exp-Golomb codes, for the few SPS fields needed."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]
        self.pos += 1
        return (byte >> (7 - ((self.pos - 1) & 7))) & 1

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.bits(zeros)


def sps_picture_size(sps_nal: bytes) -> tuple[int, int]:
    """Decoded (conformance-cropped) picture size from an HEVC SPS with one sub-layer."""
    rbsp = _unescape(sps_nal)
    if (rbsp[2] >> 1) & 0x07:
        raise ValueError("SPS with several sub-layers is not supported")
    r = _Bits(rbsp[15:])  # after NAL header (2), vps id/sub-layers (1) and general PTL (12)
    r.ue()  # sps_seq_parameter_set_id
    chroma = r.ue()
    if chroma == 3:
        r.bit()  # separate_colour_plane_flag
    width, height = r.ue(), r.ue()
    if r.bit():  # conformance window, in chroma sample units
        sub_w = 2 if chroma in (1, 2) else 1
        sub_h = 2 if chroma == 1 else 1
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    return width, height


def _box(typ: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def _full_box(typ: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(typ, struct.pack(">I", (version << 24) | flags) + payload)


def build_heif(width: int, height: int, chroma: str, param_sets: list[bytes], payload: bytes) -> bytes:
    """A minimal single-image HEIF (the layout libheif writes) around an HEVC still picture."""
    sps = _unescape(param_sets[1])
    ptl = sps[3:15]  # general profile/tier/level: identical to hvcC bytes 1..12
    chroma_idc = 3 if chroma == "444" else 1
    arrays = b""
    for nal in param_sets:
        nal_type = (nal[0] >> 1) & 0x3F
        arrays += struct.pack(">BHH", 0x80 | nal_type, 1, len(nal)) + nal
    hvcc = (bytes([1]) + ptl + bytes([0xF0, 0x00, 0xFC, 0xFC | chroma_idc, 0xF8, 0xF8, 0, 0, 0x0F])
            + bytes([len(param_sets)]) + arrays)
    ftyp = _box(b"ftyp", b"heic" + b"\x00\x00\x00\x00" + b"mif1heicmiaf")
    hdlr = _full_box(b"hdlr", 0, 0, b"\x00" * 4 + b"pict" + b"\x00" * 12 + b"\x00")
    iinf = _full_box(b"iinf", 0, 0, struct.pack(">H", 1)
                     + _full_box(b"infe", 2, 0, struct.pack(">HH", 1, 0) + b"hvc1" + b"\x00"))
    pitm = _full_box(b"pitm", 0, 0, struct.pack(">H", 1))
    colr = _box(b"colr", b"nclx" + struct.pack(">HHHB", 1, 13, 6, 0x80))  # sRGB, BT.601, full range
    ispe = _full_box(b"ispe", 0, 0, struct.pack(">II", width, height))
    pixi = _full_box(b"pixi", 0, 0, bytes([3, 8, 8, 8]))
    ipco = _box(b"ipco", _box(b"hvcC", hvcc) + colr + ispe + pixi)
    ipma = _full_box(b"ipma", 0, 0, struct.pack(">IHB", 1, 1, 4) + bytes([0x81, 0x02, 0x03, 0x04]))
    iprp = _box(b"iprp", ipco + ipma)

    def meta(offset: int) -> bytes:
        iloc = _full_box(b"iloc", 0, 0, bytes([0x44, 0x40]) + struct.pack(">HHHIHII", 1, 1, 0, offset, 1, 0,
                                                                        len(payload)))
        return _full_box(b"meta", 0, 0, hdlr + iloc + iinf + pitm + iprp)

    head = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(head) + _box(b"mdat", payload)


@register_codec("hevc")
class HevcCodec(BenchCodec):
    """HEVC intra (x265, the encoder inside BPG) in a HEIF file; ``chroma`` 444 (default) or 420."""

    name = "hevc"
    quality_range = (0.0, 100.0)
    settings = (3.0, 14.0, 26.0, 38.0, 48.0, 58.0)

    def __init__(self, settings: Sequence[Setting] | None = None, chroma: str | int = "444",
                 preset: str = "medium", threads: int = 1, **options: Any) -> None:
        super().__init__(settings, **options)
        self._heif = _import_pillow_heif()
        if "x265" not in str(self._heif.libheif_info().get("encoders", {})):
            raise CodecUnavailable("hevc: this pillow-heif has no x265 encoder")
        self.chroma = str(chroma)
        if self.chroma not in _CHROMAS:
            raise ValueError(f"{self.name}: chroma must be 444 or 420, not {chroma!r}")
        self.preset = str(preset)
        self.threads = int(threads)

    def encode_heif(self, image: Image.Image, setting: Setting) -> bytes:
        """The HEIF file from pillow-heif/libheif/x265."""
        buf = io.BytesIO()
        enc = {"preset": self.preset}
        if self.threads > 0:
            enc["x265:pools"] = str(self.threads)
            enc["x265:frame-threads"] = "1"
        self._heif.from_pillow(ensure_rgb(image)).save(
            buf, quality=int(round(setting)), chroma=int(self.chroma), enc_params=enc
        )
        return buf.getvalue()

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        return self.encode_heif(image, setting)

    def decode(self, data: bytes) -> Image.Image:
        heif = self._heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        return heif.to_pillow().convert("RGB")

    def header_bytes(self, data: bytes) -> int | None:
        """Everything but the coded slices and the parameter sets: ftyp + meta + mdat header."""
        try:
            return len(data) - len(mdat_payload(data)) - sum(len(n) + 4 for n in hvcc_parameter_sets(data))
        except ValueError:
            return None

    def options(self) -> dict[str, Any]:
        return {"chroma": self.chroma, "preset": self.preset, "threads": self.threads}

    def version(self) -> str:
        info = self._heif.libheif_info()
        x265 = info["encoders"].get("x265", "x265")
        return f"{x265}; libheif {info['libheif']}; pillow-heif {self._heif.__version__}"

    def container_note(self) -> str:
        return "HEIF: ftyp + meta (hdlr, iloc, iinf, pitm, iprp with hvcC/colr/ispe/pixi), about 370 bytes"


@register_codec("hevc-raw")
class HevcRawCodec(HevcCodec):
    """x265 HEVC without the HEIF container: 5-byte header + VPS/SPS/PPS + slice NAL units.

    Stream layout: width (u16), height (u16), chroma (u8: 0 = 4:2:0, 1 = 4:4:4), three parameter
    sets each as u16 length + NAL, then the length-prefixed slice NAL units. Close to BPG's layout.
    """

    name = "hevc-raw"

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        heif = self.encode_heif(image, setting)
        params = hvcc_parameter_sets(heif)
        if len(params) != 3:
            raise RuntimeError(f"hevc-raw: expected VPS/SPS/PPS in hvcC, found {len(params)} NAL units")
        out = struct.pack(">HHB", image.width, image.height, int(self.chroma == "444"))
        for nal in params:
            out += struct.pack(">H", len(nal)) + nal
        return out + mdat_payload(heif)

    def decode(self, data: bytes) -> Image.Image:
        width, height, c444 = struct.unpack(">HHB", data[:5])
        pos, params = 5, []
        for _ in range(3):
            n = struct.unpack(">H", data[pos : pos + 2])[0]
            params.append(data[pos + 2 : pos + 2 + n])
            pos += 2 + n
        # libheif pads the picture it hands to x265 (e.g. to 64 rows) and crops with a clap box;
        # here the HEIF gets the coded size from the SPS and the crop comes from our header.
        coded_w, coded_h = sps_picture_size(params[1])
        heif = build_heif(coded_w, coded_h, "444" if c444 else "420", params, data[pos:])
        image = super().decode(heif)
        return image if image.size == (width, height) else image.crop((0, 0, width, height))

    def header_bytes(self, data: bytes) -> int | None:
        return 5 + 3 * 2

    def container_note(self) -> str:
        return "none: 5-byte size/chroma header + VPS/SPS/PPS (u16-length) + length-prefixed slices"
