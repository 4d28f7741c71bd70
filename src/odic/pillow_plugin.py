"""Pillow plugin: ``Image.open("photo.odic")`` and ``img.save("photo.odic", quality=50, observer="machine")``.

Importing :mod:`odic` registers the format (Pillow does not load the ``pillow.plugins`` entry point
by itself, so ``import odic`` or ``import odic.pillow_plugin`` is needed before ``Image.open``).

Opening a file reads only the header (size and mode, checked against Pillow's decompression-bomb
limit); the model is loaded and the stream decoded on ``load()``, as Pillow does for every format.
This follows Pillow's own ``WebPImagePlugin``.

Save options (``img.save(fp, format="ODIC", **options)``):

* ``quality``: 0 (smallest) .. 100 (best), continuous; default 50;
* ``bpp``: target bits per pixel of the whole file (quality is searched), or
* ``size_bytes``: largest file size in bytes;
* ``observer``: ``"human"`` (= 0, default), ``"machine"`` (= 1) or a mix in [0, 1];
* ``model``: installed model name or weights path (default: the bundled model);
* ``tile``: tile size in pixels (multiple of 64), see :meth:`odic.Codec.compress`;
* ``refine``: optimisation steps fitting the latents to the observer (default 0; slower encoding,
  same decoder), with ``refine_classifier`` scoring a machine share (default efficientnet_lite0),
  on random views shifted by up to ``refine_shift`` pixels (default: the API's, 8);
* ``codec``: an already loaded :class:`odic.Codec` (overrides ``model``).
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, Any

from PIL import Image, ImageFile

from .bitstream import MAGIC, ColorMode, FormatError, read_header
from .options import DEFAULT_CLASSIFIER

if TYPE_CHECKING:
    from .api import Codec

FORMAT = "ODIC"
EXTENSION = ".odic"
MIME = "image/x-odic"

# Decoded colour mode -> (Pillow mode, raw mode of the decoded pixels).
_PIL_MODES: dict[ColorMode, tuple[str, str]] = {
    ColorMode.RGB: ("RGB", "RGB"),
    ColorMode.L: ("L", "L"),
    ColorMode.RGBA: ("RGBA", "RGBA"),
    ColorMode.LA: ("LA", "LA"),
    ColorMode.I16: ("I;16", "I;16"),
    ColorMode.RGB16: ("RGB", "RGB"),  # coded at 8 bits and decoded as 8-bit RGB
}

_default_codec: Codec | None = None


def set_codec(codec: Codec | None) -> None:
    """Use ``codec`` (e.g. on a GPU, or another model) for every ``Image.open``/``save``; None resets."""
    global _default_codec
    _default_codec = codec


def _codec(model: str | None = None) -> Codec:
    """The codec for the plugin: the one set with :func:`set_codec`, else ``odic.load(model)`` (cached)."""
    if model is None and _default_codec is not None:
        return _default_codec
    from .api import load

    return load(model)


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


class OdicImageFile(ImageFile.ImageFile):
    """An .odic stream opened by Pillow: header at open, the learned decoder at load()."""

    format = FORMAT
    format_description = "odic learned image codec"

    def _open(self) -> None:
        assert self.fp is not None
        data = self.fp.read()
        if not _accept(data):
            raise SyntaxError("not an odic stream")
        try:
            # Pillow's own bomb check below; the header limit is enforced again when decoding.
            header, _ = read_header(data, None)
        except FormatError as exc:
            raise SyntaxError(str(exc)) from None
        Image._decompression_bomb_check((header.width, header.height))
        self._data = data
        self._size = (header.width, header.height)
        self._mode, self._rawmode = _PIL_MODES[header.mode]
        self.info["odic"] = header.to_dict()
        self.info["quality"] = header.quality
        self.info["observer"] = header.observer
        self.info["model_id"] = header.model_id
        self._decoded = False
        self.tile = []

    def load(self) -> Any:
        """Decode the stream with the learned model (once), then let Pillow read the raw pixels."""
        if not self._decoded:
            img = _codec().decompress(self._data)
            if img.mode != self.mode:
                img = img.convert(self.mode)
            if self.fp is not None and self._exclusive_fp:
                self.fp.close()
            self.fp = io.BytesIO(img.tobytes())
            self.tile = [ImageFile._Tile("raw", (0, 0, *self.size), 0, self._rawmode)]
            self._decoded = True
        return super().load()

    def load_seek(self, pos: int) -> None:
        """The whole stream is already in memory; nothing to seek."""


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Encode ``im`` with the options given to ``Image.save`` (see the module docstring)."""
    opts = im.encoderinfo
    codec = opts.get("codec") or _codec(opts.get("model"))
    # The API's own mode policy applies (P -> RGB/RGBA, 1 -> L, I -> I;16, ICC -> sRGB, EXIF rotation).
    data = codec.compress(
        im,
        opts.get("quality"),
        opts.get("observer", 0.0),
        bpp=opts.get("bpp"),
        size_bytes=opts.get("size_bytes"),
        tile=opts.get("tile"),
        refine=opts.get("refine", 0),
        refine_classifier=opts.get("refine_classifier", DEFAULT_CLASSIFIER),
        refine_shift=opts.get("refine_shift"),
    )
    fp.write(data)


def register() -> None:
    """Register the format with Pillow (done on import; safe to call again)."""
    Image.register_open(FORMAT, OdicImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register()
