"""The public API: ``odic.load()`` returns a :class:`Codec` that compresses and decompresses.

It accepts what ML code has at hand (a path, a PIL image, a numpy array, a tensor) and gives
PIL images back, like Pillow; the batched tensor path serves data pipelines.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import imageio
from .bitstream import (
    FLAG_ALPHA,
    FLAG_TILE_MARGIN,
    MAX_TILE_PIXELS,
    MODEL_STRIDE,
    TILE_MARGIN,
    FormatError,
    Header,
    Stream,
    coded_box,
    observer_to_code,
    pack,
    quality_to_code,
    read_header,
    tile_boxes,
    unpack,
)
from .model import OdicModel
from .model.conditioning import QUALITY_CODE_MAX
from .observers import Observer, ObserverUnavailable, create_observer, list_observers
from .refine import DEFAULT_SHIFT, refine_latents
from .weights import ModelNotFound, build_model, installed_models, read_weights_file, resolve

#: Refinement steps allowed per image: a few hundred already cost minutes per megapixel.
MAX_REFINE_STEPS = 1000
#: The classifier a machine share is refined for: the model's training observer.
DEFAULT_REFINE_CLASSIFIER = "efficientnet_lite0"
#: Largest shift of refinement's random classifier views: beyond it a view loses too much image.
MAX_REFINE_SHIFT = 64


class Refinement(NamedTuple):
    """Encoder refinement settings, validated: steps, the classifier of a machine share, view shift."""

    steps: int = 0
    observer: Observer | None = None
    shift: int = DEFAULT_SHIFT


#: Images larger than this (in pixels) are coded in tiles to bound memory.
TILE_THRESHOLD_PIXELS = 2048 * 2048
DEFAULT_TILE = 1024


def parse_observer(observer: float | str) -> float:
    """0 or 'human' keeps what people see; 1 or 'machine' what a classifier needs; floats mix."""
    if isinstance(observer, str):
        named = {"human": 0.0, "machine": 1.0}
        if observer.lower() in named:
            return named[observer.lower()]
        try:
            observer = float(observer)
        except ValueError:
            raise ValueError(f"observer must be 'human', 'machine' or a number in [0, 1], got {observer!r}") from None
    value = float(observer)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"observer must be in [0, 1], got {observer!r}")
    return value


class Codec:
    """A loaded odic model with compress/decompress for images, arrays, tensors and batches."""

    def __init__(self, model: OdicModel, model_id: str, weights_hash: bytes,
                 device: str | torch.device = "cpu", threads: int | None = None,
                 decodes: list[dict] | tuple = ()):
        self.model = model.eval()
        self.model_id = model_id
        self.weights_hash = weights_hash
        # (model id, weights hash) of earlier models with this decoder: their streams decode here too.
        self.decodes = {(d["model_id"], bytes.fromhex(d["weights_hash"])) for d in decodes}
        self.device = torch.device(device)
        self.model.to(self.device)
        self._observers: dict[str, Observer] = {}  # classifiers for refinement, loaded when first asked for
        if threads:
            torch.set_num_threads(int(threads))

    def __repr__(self) -> str:
        return f"Codec(model_id={self.model_id!r}, device={str(self.device)!r})"

    # ------------------------------------------------------------------ single images
    def compress(self, image, quality: float | None = None, observer: float | str = 0.0, *,
                 bpp: float | None = None, size_bytes: int | None = None, tile: int | None = None,
                 refine: int = 0, refine_classifier: str = DEFAULT_REFINE_CLASSIFIER,
                 refine_shift: int | None = None) -> bytes:
        """Compress an image; give ``quality`` (0-100, default 50), or a target ``bpp`` or ``size_bytes``.

        ``refine`` > 0 spends that many optimisation steps fitting this image's latents to the
        observer (slower encoding, same decoder; see :mod:`odic.refine`); a machine share is
        scored with ``refine_classifier``, on random views shifted by up to ``refine_shift``
        pixels and mirrored when that is above 0 (None: :data:`odic.refine.DEFAULT_SHIFT`).
        """
        alpha = parse_observer(observer)
        given = sum(v is not None for v in (quality, bpp, size_bytes))
        if given > 1:
            raise ValueError("give only one of quality, bpp and size_bytes")
        refinement = self._refinement(refine, refine_classifier, alpha, refine_shift)
        prep = imageio.prepare(image)
        h, w = prep.rgb.shape[:2]
        limit = imageio.get_max_pixels()
        if limit is not None and h * w > limit:
            raise ValueError(f"image of {w}x{h} pixels exceeds the limit of {limit} (odic.imageio.set_max_pixels)")
        tile_units = self._tile_units(h, w, tile)
        x = imageio.to_tensor(prep.rgb)
        acode = observer_to_code(alpha)
        if bpp is not None or size_bytes is not None:
            return self._search(prep, x, acode, tile_units, bpp, size_bytes, refinement)
        qcode = quality_to_code(50.0 if quality is None else quality)
        return self._encode(prep, x, qcode, acode, tile_units, refinement)

    def decompress(self, data: bytes, mode: str | None = None) -> Image.Image:
        """Decode a stream to a PIL image of the original kind (RGB, L, RGBA, ...); ``mode`` converts."""
        stream = unpack(data, imageio.get_max_pixels())
        codec = self._codec_for(stream.header)
        rgb = codec._decode_rgb(stream)
        alpha = None
        if stream.header.flags & FLAG_ALPHA:
            alpha = _inflate_alpha(stream.alpha_plane, stream.header)
        img = imageio.restore(rgb, stream.header.mode, alpha)
        return img.convert(mode) if mode else img

    @staticmethod
    def info(data: bytes) -> dict:
        """The header as a dict (no model needed), plus size and bpp of the whole stream."""
        header, _ = read_header(data, None)
        out = header.to_dict()
        out["bytes"] = len(data)
        out["bpp"] = len(data) * 8 / (header.width * header.height)
        return out

    # ------------------------------------------------------------------ batches
    @torch.no_grad()
    def compress_batch(self, x: torch.Tensor, quality: float = 50.0, observer: float | str = 0.0) -> list[bytes]:
        """Compress a float batch (B, 3, H, W) in [0, 1] at one setting; one stream per image.

        Each stream is exactly what :meth:`compress` writes for that image (a batched analysis
        transform could round a latent differently), and decodes with :meth:`decompress_batch`.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a batch of shape (B, 3, H, W), got {tuple(x.shape)}")
        qcode, acode = quality_to_code(quality), observer_to_code(parse_observer(observer))
        h, w = x.shape[-2:]
        x8 = torch.floor(x.detach().float().clamp(0, 1) * 255 + 0.5) / 255  # what a PNG would hold
        streams = []
        for image in x8:  # one by one, so a stream has the same bits as compress() of that image
            out = self.model.compress(_pad(image[None].to(self.device)), qcode, acode)
            (y,), (z,) = out["strings"]
            streams.append(pack(Stream(self._header(w, h, qcode, acode, imageio.ColorMode.RGB, 0), [(y, z)])))
        return streams

    @torch.no_grad()
    def decompress_batch(self, streams: list[bytes]) -> torch.Tensor:
        """Decode streams of one size and setting into a float batch (B, 3, H, W) in [0, 1]."""
        parsed = [unpack(s, imageio.get_max_pixels()) for s in streams]
        h0 = parsed[0].header
        for p in parsed:
            hd = p.header
            if (hd.width, hd.height, hd.quality_code, hd.alpha_code, hd.model_id, hd.tile_units) != (
                h0.width, h0.height, h0.quality_code, h0.alpha_code, h0.model_id, 0
            ):
                raise ValueError("decompress_batch needs untiled streams of one size, model and setting")
        codec = self._codec_for(h0)
        # Image by image: a batched synthesis blocks its matrix products differently, so a pixel
        # near a rounding boundary could decode one level apart from the same stream decoded alone.
        x = torch.cat([codec._guarded_decompress([p.tiles[0][0]], [p.tiles[0][1]], h0.height, h0.width, h0)
                       for p in parsed])
        return torch.floor(x[..., : h0.height, : h0.width] * 255 + 0.5) / 255

    # ------------------------------------------------------------------ internals
    def _refinement(self, steps, classifier: str, alpha: float, shift=None) -> Refinement:
        """What :func:`odic.refine.refine_latents` needs, checked before any work."""
        shift = DEFAULT_SHIFT if shift is None else shift
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_REFINE_STEPS:
            raise ValueError(f"refine must be a whole number of steps from 0 to {MAX_REFINE_STEPS}, got {steps!r}")
        if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= MAX_REFINE_SHIFT:
            raise ValueError(f"refine_shift must be a whole number of pixels from 0 to {MAX_REFINE_SHIFT}, "
                             f"got {shift!r}")
        if steps == 0 or alpha == 0:
            return Refinement(steps)
        if classifier not in list_observers():
            raise ValueError(f"unknown refine classifier {classifier!r}; known: {', '.join(list_observers())}")
        if classifier not in self._observers:
            try:
                self._observers[classifier] = create_observer(classifier, self.device)
            except ObserverUnavailable as exc:
                raise ValueError(f"refine classifier {classifier!r} is unavailable: {exc}") from None
        return Refinement(steps, self._observers[classifier], shift)

    def _header(self, w: int, h: int, qcode: int, acode: int, mode, tile_units: int, flags: int = 0) -> Header:
        return Header(self.model_id, self.weights_hash, w, h, qcode, acode, mode, tile_units, flags)

    @staticmethod
    def _tile_units(h: int, w: int, tile: int | None) -> int:
        if tile is None:
            if h * w <= TILE_THRESHOLD_PIXELS:
                return 0
            tile = _even_tile(h, w)
        if tile == 0:
            if h * w > MAX_TILE_PIXELS:
                raise ValueError(f"an image of {w}x{h} is too large to code untiled (at most {MAX_TILE_PIXELS} "
                                 "pixels per tile); leave tile unset or give a tile size")
            return 0
        if tile < MODEL_STRIDE or tile % MODEL_STRIDE:
            raise ValueError(f"tile size must be a positive multiple of {MODEL_STRIDE}, got {tile}")
        if tile * tile > MAX_TILE_PIXELS:
            raise ValueError(f"tile size {tile} is above the largest allowed, {math.isqrt(MAX_TILE_PIXELS)}")
        return tile // MODEL_STRIDE

    @torch.no_grad()
    def _encode(self, prep: imageio.Prepared, x: torch.Tensor, qcode: int, acode: int, tile_units: int,
                refinement: Refinement = Refinement()) -> bytes:
        h, w = x.shape[-2:]
        header = self._header(w, h, qcode, acode, prep.mode, tile_units, FLAG_TILE_MARGIN if tile_units else 0)
        steps, observer, shift = refinement
        tiles = []
        for box in tile_boxes(header):
            top, left, th, tw = coded_box(header, box)
            part = _pad(x[..., top : top + th, left : left + tw].to(self.device))
            if steps:
                y_s, z_s = refine_latents(self.model, part, qcode, acode, steps, observer, valid=(th, tw),
                                          shift=shift)
                out = self.model.compress_latents(y_s, z_s, qcode, acode)
            else:
                out = self.model.compress(part, qcode, acode)
            tiles.append((out["strings"][0][0], out["strings"][1][0]))
        alpha_plane = None
        if prep.alpha is not None:
            header.flags |= FLAG_ALPHA
            alpha_plane = zlib.compress(np.ascontiguousarray(prep.alpha).tobytes(), 9)
        return pack(Stream(header, tiles, alpha_plane), None)

    @torch.no_grad()
    def _decode_rgb(self, stream: Stream) -> np.ndarray:
        hd = stream.header
        canvas = np.empty((hd.height, hd.width, 3), dtype=np.uint8)
        for box, (y, z) in zip(tile_boxes(hd), stream.tiles, strict=True):
            top, left, th, tw = box
            ctop, cleft, ch, cw = coded_box(hd, box)
            x = self._guarded_decompress([y], [z], ch, cw, hd)
            dy, dx = top - ctop, left - cleft  # the margin above / left of the tile
            canvas[top : top + th, left : left + tw] = imageio.to_uint8(x[0, :, dy : dy + th, dx : dx + tw])
        return canvas

    def _guarded_decompress(self, ys: list[bytes], zs: list[bytes], th: int, tw: int, hd: Header) -> torch.Tensor:
        """Run the model's decoder on strings that may be hostile, without letting it misbehave.

        CompressAI's rANS decoder reads its input without bounds checks: a short or crafted string
        (a valid CRC proves nothing against an attacker) makes it read past the end of the buffer,
        which can segfault. Each string is therefore followed by enough zero bytes to cover the
        most the decoder can read (see :func:`_rans_padding`), so every read stays inside memory we
        own and decoding garbage yields a garbage image or an error, never a crash. A decoded
        image that is not finite is refused rather than returned as silent noise.

        On the CPU the synthesis runs without oneDNN: its convolutions split the reduction by
        thread count, so 1 and 2 threads could differ by one grey level in a pixel; the plain
        kernels give the same pixels for any thread count (scripts/determinism_check.py).
        """
        zh, zw = _z_shape(th, tw)
        cfg = self.model.config
        n_z, n_y = cfg.N * zh * zw, cfg.M * 16 * zh * zw
        padded_y = [y + bytes(_rans_padding(len(y), n_y)) for y in ys]
        padded_z = [z + bytes(_rans_padding(len(z), n_z)) for z in zs]
        try:
            y_hat_s = self._verify_strings(ys, zs, padded_y, padded_z, (zh, zw), hd)
            with _deterministic_kernels(self.device):
                x = self.model.synthesize(y_hat_s, hd.quality_code, hd.alpha_code, self.device)
        except FormatError:
            raise
        except (RuntimeError, ValueError, IndexError, OverflowError) as exc:
            raise FormatError(f"corrupted entropy-coded data ({type(exc).__name__})") from None
        if not torch.isfinite(x).all():
            raise FormatError("corrupted entropy-coded data (decoded values are not finite)")
        return x

    @torch.no_grad()
    def _verify_strings(self, ys: list[bytes], zs: list[bytes], padded_y: list[bytes], padded_z: list[bytes],
                        shape: tuple[int, int], hd: Header) -> torch.Tensor:
        """Entropy-decode, refusing strings that are not exactly what the encoder would write.

        Returns the decoded (gained) latents for the synthesis transform.

        rANS has no redundancy, so a CRC-valid stream with forged strings would decode to a silent
        garbage image. The encoder is deterministic (integer entropy parameters), so re-encoding
        the decoded symbols must give back the same bytes; anything else (random bytes, a string
        cut short or padded, data coded for another quality) is corrupted. Costs one extra rANS
        pass, a small fraction of the synthesis transform.
        """
        m = self.model
        z_hat = m.entropy_bottleneck.decompress(padded_z, shape)
        medians = m.entropy_bottleneck._get_medians().detach()
        _check_symbol_range(z_hat - medians, "z")
        if m.entropy_bottleneck.compress(z_hat) != zs:
            raise FormatError("corrupted entropy-coded data (z string does not re-encode to itself)")
        indexes, means = m._entropy_parameters(z_hat, hd.quality_code, hd.alpha_code)
        y_hat = m.gaussian_conditional.decompress(padded_y, indexes, means=means)
        _check_symbol_range(y_hat - means, "y")
        if m.gaussian_conditional.compress(y_hat, indexes, means=means) != ys:
            raise FormatError("corrupted entropy-coded data (y string does not re-encode to itself)")
        return y_hat

    def _search(self, prep, x, acode, tile_units, bpp, size_bytes,
                refinement: Refinement = Refinement()) -> bytes:
        """Find the quality whose stream is closest to the target (the largest that fits for size_bytes).

        Rate grows monotonically with the quality code, and log(bpp) is close to linear in it, so the
        search interpolates log(bpp) inside a shrinking bracket (regula falsi, with bisection as the
        fallback): typically 4-6 encodes instead of 14 for plain bisection.

        With refinement the search runs on the fast encoder, and only the chosen quality is
        refined; for ``size_bytes`` the refined stream replaces it only if it still fits.
        """
        qcode, found = self._search_unrefined(prep, x, acode, tile_units, bpp, size_bytes)
        if not refinement.steps:
            return found
        refined = self._encode(prep, x, qcode, acode, tile_units, refinement)
        return refined if size_bytes is None or len(refined) <= size_bytes else found

    def _search_unrefined(self, prep, x, acode, tile_units, bpp, size_bytes) -> tuple[int, bytes]:
        """(quality code, stream) of the fast encoder's search; see :meth:`_search`."""
        h, w = x.shape[-2:]
        target = bpp if bpp is not None else size_bytes * 8 / (h * w)
        if not target > 0:
            raise ValueError(f"target rate must be positive, got {target}")
        tried: dict[int, bytes] = {}

        def rate(code: int) -> float:
            if code not in tried:
                tried[code] = self._encode(prep, x, code, acode, tile_units)
            return len(tried[code]) * 8 / (h * w)

        def fits(code: int) -> bool:
            return size_bytes is None or len(tried[code]) <= size_bytes

        lo, hi = 0, QUALITY_CODE_MAX
        r_lo, r_hi = rate(lo), rate(hi)
        if r_lo >= target or r_hi <= target:  # out of range: the nearest end
            code = lo if r_lo >= target else hi
            if size_bytes is not None and not fits(code):
                raise ValueError(f"cannot reach {size_bytes} bytes: the smallest stream is {len(tried[code])} bytes")
            got = rate(code)
            if bpp is not None and abs(math.log(got / target)) > math.log(1.1):
                warnings.warn(f"target {target:.4g} bpp is outside this model's range for this image; "
                              f"got {got:.4g} bpp", stacklevel=3)
            return code, tried[code]
        for i in range(12):
            if hi - lo <= 1:
                break
            t = (math.log(target) - math.log(r_lo)) / (math.log(r_hi) - math.log(r_lo))
            guess = lo + t * (hi - lo) if i % 3 != 2 else (lo + hi) / 2  # every third step bisects
            mid = min(max(int(round(guess)), lo + 1), hi - 1)
            r = rate(mid)
            if size_bytes is None and abs(math.log(r / target)) < 0.02:
                return mid, tried[mid]
            if r > target:
                hi, r_hi = mid, r
            else:
                lo, r_lo = mid, r
        if size_bytes is not None:
            return lo, tried[lo]  # r_lo <= target: the best quality that fits
        best = min((lo, hi), key=lambda c: abs(math.log(rate(c) / target)))
        return best, tried[best]

    def _can_decode(self, header: Header) -> bool:
        written_by = (header.model_id, header.weights_hash)
        return written_by == (self.model_id, self.weights_hash) or written_by in self.decodes

    def _codec_for(self, header: Header) -> Codec:
        if self._can_decode(header):
            return self
        for _name, path in installed_models().items():
            payload = read_weights_file(path)
            if payload["model_id"] == header.model_id or any(
                d["model_id"] == header.model_id for d in payload.get("decodes", [])
            ):
                other = _load_path(path, self.device)
                if other._can_decode(header):
                    return other
        raise ModelNotFound(
            f"this stream needs model '{header.model_id}' (weights {header.weights_hash.hex()}), "
            "which is not installed; pass it with --model / odic.load(path)"
        )


def _pad(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % MODEL_STRIDE, (-w) % MODEL_STRIDE
    return F.pad(x, [0, pw, 0, ph], mode="replicate") if ph or pw else x


def _even_tile(h: int, w: int) -> int:
    """The tile side for as many tiles as DEFAULT_TILE would give, but even, with no thin last row.

    Tiles overlap by TILE_MARGIN (FLAG_TILE_MARGIN), so a fixed side would leave slivers (a 4000 px
    wide image in 992 px steps ends in a 32 px column); sizing the tiles to the image avoids them.
    """
    rows, cols = math.ceil(h / DEFAULT_TILE), math.ceil(w / DEFAULT_TILE)
    side = max(math.ceil(h / rows), math.ceil(w / cols)) + 2 * TILE_MARGIN
    return min(math.ceil(side / MODEL_STRIDE) * MODEL_STRIDE, math.isqrt(MAX_TILE_PIXELS))


def _z_shape(h: int, w: int) -> tuple[int, int]:
    return math.ceil(h / MODEL_STRIDE), math.ceil(w / MODEL_STRIDE)


@contextlib.contextmanager
def _deterministic_kernels(device: torch.device) -> Iterator[None]:
    """Disable oneDNN on the CPU for the block (its results depend on the thread count)."""
    if device.type != "cpu":
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # oneDNN's TF32 notice when toggling the flag
        ctx = torch.backends.mkldnn.flags(enabled=False)
        ctx.__enter__()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ctx.__exit__(None, None, None)


#: Largest |symbol| a real encoder produces is in the hundreds; escaped values far beyond this
#: only come from forged strings, and would make CompressAI's encoder loop forever (its escape
#: loop shifts an int32 by 32 bits or more), so they are refused before re-encoding.
MAX_SYMBOL = 1 << 20


def _check_symbol_range(symbols: torch.Tensor, name: str) -> None:
    if symbols.numel() and not bool((symbols.abs() <= MAX_SYMBOL).all()):  # NaN fails too
        raise FormatError(f"corrupted entropy-coded data ({name} symbols out of range)")


def _rans_padding(nbytes: int, symbols: int) -> int:
    """Zero bytes to append to an rANS string so CompressAI's decoder never reads past the buffer.

    The decoder reads 32-bit words and only moves forward: at most one word per symbol for the
    main alphabet, plus the bypass bits of escaped values. Escape lengths are 4-bit groups that
    continue while a group is 15, so the bits of the real string can announce at most 15x their
    own size of bypass data (15 * nbytes); once it reads zeros a group of 15 cannot last beyond the
    64-bit state, so each further symbol costs a bounded few words (8 bytes each covers the
    common case, the constant covers the bounded escapes while the state drains).
    """
    return 16 * nbytes + 8 * symbols + 65536


def _inflate_alpha(blob: bytes | None, header: Header) -> np.ndarray:
    n = header.width * header.height
    try:
        d = zlib.decompressobj()
        raw = d.decompress(blob or b"", n + 1)  # bounded: never inflate more than the plane
    except zlib.error:
        raise FormatError("alpha plane is corrupted") from None
    if len(raw) != n:
        raise FormatError("alpha plane has the wrong size")
    return np.frombuffer(raw, dtype=np.uint8).reshape(header.height, header.width)


_CACHE: dict[tuple[str, str], Codec] = {}


def _load_path(path: Path, device) -> Codec:
    key = (str(Path(path).resolve()), str(device))
    if key not in _CACHE:
        payload = read_weights_file(path)
        model, digest = build_model(payload)
        _CACHE[key] = Codec(model, payload["model_id"], digest, device, decodes=payload.get("decodes", ()))
    return _CACHE[key]


def load(model: str | Path | None = None, device: str | torch.device = "cpu", threads: int | None = None) -> Codec:
    """Load the bundled default model, an installed model by name, or a weights file by path."""
    if threads:
        torch.set_num_threads(int(threads))
    return _load_path(resolve(model), device)
