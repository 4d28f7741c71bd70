"""The public API: ``odic.load()`` returns a :class:`Codec` that compresses and decompresses.

It accepts what ML code has at hand (a path, a PIL image, a numpy array, a tensor) and gives
PIL images back, like Pillow; the batched tensor path serves data pipelines. The work happens
below: options (:mod:`odic.options`), tiling (:mod:`odic.tiling`), rate search
(:mod:`odic.ratesearch`), the model's verified coding path (:class:`odic.model.OdicModel`), the
container (:mod:`odic.bitstream`) and the installed weights (:mod:`odic.weights`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import imageio, tiling
from .bitstream import (
    FLAG_ALPHA,
    FLAG_TILE_MARGIN,
    Header,
    Stream,
    coded_box,
    deflate_alpha_plane,
    inflate_alpha_plane,
    observer_to_code,
    pack,
    quality_to_code,
    read_header,
    tile_boxes,
    unpack,
)
from .model import OdicModel
from .observers import Observer
from .options import DEFAULT_CLASSIFIER, parse_observer
from .parallel import map_single_threaded
from .ratesearch import search_quality
from .refine import Refinement, refine_latents, refinement_for
from .weights import ModelNotFound, build_model, installed_decoders, read_weights_file, resolve

__all__ = ["Codec", "load", "parse_observer"]


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
        self._observers: dict[str | int, Observer] = {}  # refinement's classifiers by name or id(module)
        if threads:
            torch.set_num_threads(int(threads))

    def __repr__(self) -> str:
        return f"Codec(model_id={self.model_id!r}, device={str(self.device)!r})"

    # ------------------------------------------------------------------ single images
    def compress(self, image, quality: float | None = None, observer: float | str = 0.0, *,
                 bpp: float | None = None, size_bytes: int | None = None, tile: int | None = None,
                 refine: int = 0, refine_classifier: str | torch.nn.Module = DEFAULT_CLASSIFIER,
                 refine_shift: int | None = None) -> bytes:
        """Compress an image; give ``quality`` (0-100, default 50), or a target ``bpp`` or ``size_bytes``.

        ``refine`` > 0 spends that many optimisation steps fitting this image's latents to the
        observer (slower encoding, same decoder; see :mod:`odic.refine`); a machine share is
        scored with ``refine_classifier``, on random views shifted by up to ``refine_shift``
        pixels and mirrored when that is above 0 (None: :data:`odic.refine.DEFAULT_SHIFT`).
        ``refine_classifier`` is an observer name (``odic.register_observer``, an installed
        package's ``odic.observers`` entry point, or ``package.module:factory``) or the user's own
        ``torch.nn.Module`` taking RGB in [0, 1]; it runs on this codec's device, a copy of a module.
        """
        mix = parse_observer(observer)
        if sum(v is not None for v in (quality, bpp, size_bytes)) > 1:
            raise ValueError("give only one of quality, bpp and size_bytes")
        refinement = refinement_for(refine, refine_classifier, mix, refine_shift, self.device, self._observers)
        prep = imageio.prepare(image)
        h, w = prep.rgb.shape[:2]
        limit = imageio.get_max_pixels()
        if limit is not None and h * w > limit:
            raise ValueError(f"image of {w}x{h} pixels exceeds the limit of {limit} (odic.imageio.set_max_pixels)")
        units = tiling.tile_units(h, w, tile)
        x = imageio.to_tensor(prep.rgb)
        acode = observer_to_code(mix)
        if bpp is None and size_bytes is None:
            qcode = quality_to_code(50.0 if quality is None else quality)
            return self._encode(prep, x, qcode, acode, units, refinement)
        # With refinement the search runs on the fast encoder and only the chosen quality is refined;
        # for size_bytes the refined stream replaces the fast one only if it still fits.
        qcode, found = search_quality(lambda code: self._encode(prep, x, code, acode, units), h * w, bpp, size_bytes)
        if not refinement.steps:
            return found
        refined = self._encode(prep, x, qcode, acode, units, refinement)
        return refined if size_bytes is None or len(refined) <= size_bytes else found

    def decompress(self, data: bytes, mode: str | None = None) -> Image.Image:
        """Decode a stream to a PIL image of the original kind (RGB, L, RGBA, ...); ``mode`` converts."""
        stream = unpack(data, imageio.get_max_pixels())
        codec = self._codec_for(stream.header)
        rgb = codec._decode_rgb(stream)
        transparency = None
        if stream.header.flags & FLAG_ALPHA:
            plane = inflate_alpha_plane(stream.alpha_plane, stream.header)
            transparency = np.frombuffer(plane, dtype=np.uint8).reshape(stream.header.height, stream.header.width)
        img = imageio.restore(rgb, stream.header.mode, transparency)
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
            out = self.model.compress(tiling.pad_to_stride(image[None].to(self.device)), qcode, acode)
            (y,), (z,) = out["strings"]
            streams.append(pack(Stream(self._header(w, h, qcode, acode, imageio.ColorMode.RGB, 0), [(y, z)])))
        return streams

    @torch.no_grad()
    def decompress_batch(self, streams: list[bytes]) -> torch.Tensor:
        """Decode streams of one size and setting into a float batch (B, 3, H, W) in [0, 1].

        The images decode in parallel (as many at once as torch has threads), to the same pixels
        as one at a time.
        """
        parsed = [unpack(s, imageio.get_max_pixels()) for s in streams]
        h0 = parsed[0].header
        for p in parsed:
            hd = p.header
            if (hd.width, hd.height, hd.quality_code, hd.alpha_code, hd.model_id, hd.tile_units) != (
                h0.width, h0.height, h0.quality_code, h0.alpha_code, h0.model_id, 0
            ):
                raise ValueError("decompress_batch needs untiled streams of one size, model and setting")
        codec = self._codec_for(h0)
        # Image by image, several at once on one thread each: a batched synthesis would block its
        # products differently, and a pixel could decode one level apart from the stream decoded alone.
        x = torch.cat(map_single_threaded(lambda p: codec._decode_tile(p.tiles[0], h0.height, h0.width, h0), parsed))
        return torch.floor(x[..., : h0.height, : h0.width] * 255 + 0.5) / 255

    # ------------------------------------------------------------------ internals
    def _header(self, w: int, h: int, qcode: int, acode: int, mode, tile_units: int, flags: int = 0) -> Header:
        return Header(self.model_id, self.weights_hash, w, h, qcode, acode, mode, tile_units, flags)

    @torch.no_grad()
    def _encode(self, prep: imageio.Prepared, x: torch.Tensor, qcode: int, acode: int, tile_units: int,
                refinement: Refinement = Refinement()) -> bytes:
        h, w = x.shape[-2:]
        header = self._header(w, h, qcode, acode, prep.mode, tile_units, FLAG_TILE_MARGIN if tile_units else 0)
        steps, observer, shift = refinement
        tiles = []
        for box in tile_boxes(header):
            top, left, th, tw = coded_box(header, box)
            part = tiling.pad_to_stride(x[..., top : top + th, left : left + tw].to(self.device))
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
            alpha_plane = deflate_alpha_plane(np.ascontiguousarray(prep.alpha).tobytes())
        return pack(Stream(header, tiles, alpha_plane), None)

    @torch.no_grad()
    def _decode_rgb(self, stream: Stream) -> np.ndarray:
        hd = stream.header
        canvas = np.empty((hd.height, hd.width, 3), dtype=np.uint8)
        for box, (y, z) in zip(tile_boxes(hd), stream.tiles, strict=True):
            top, left, th, tw = box
            ctop, cleft, ch, cw = coded_box(hd, box)
            x = self._decode_tile((y, z), ch, cw, hd)
            dy, dx = top - ctop, left - cleft  # the margin above / left of the tile
            canvas[top : top + th, left : left + tw] = imageio.to_uint8(x[0, :, dy : dy + th, dx : dx + tw])
        return canvas

    def _decode_tile(self, strings: tuple[bytes, bytes], th: int, tw: int, hd: Header) -> torch.Tensor:
        """The model's verified decode of one tile's (y, z) strings (``FormatError`` if forged)."""
        y, z = strings
        out = self.model.decompress([[y], [z]], tiling.z_shape(th, tw), hd.quality_code, hd.alpha_code, self.device)
        return out["x_hat"]

    def _can_decode(self, header: Header) -> bool:
        written_by = (header.model_id, header.weights_hash)
        return written_by == (self.model_id, self.weights_hash) or written_by in self.decodes

    def _codec_for(self, header: Header) -> Codec:
        if self._can_decode(header):
            return self
        for path in installed_decoders(header.model_id):
            other = _load_path(path, self.device)
            if other._can_decode(header):
                return other
        raise ModelNotFound(
            f"this stream needs model '{header.model_id}' (weights {header.weights_hash.hex()}), "
            "which is not installed; pass it with --model / odic.load(path)"
        )


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
