"""The Pillow plugin: Image.open / Image.save for .odic, registered by ``import odic``."""

from __future__ import annotations

import io
from importlib.metadata import entry_points

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import odic
from odic import pillow_plugin

from .conftest import smooth_image


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(smooth_image(64, 96, seed=3))


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def test_format_is_registered_on_import() -> None:
    assert Image.registered_extensions()[".odic"] == "ODIC"
    assert Image.MIME["ODIC"] == "image/x-odic"
    assert "ODIC" in Image.OPEN and "ODIC" in Image.SAVE
    names = {ep.name: ep.value for ep in entry_points(group="pillow.plugins")}
    assert names.get("odic") == "odic.pillow_plugin"


def test_save_and_open_by_extension(tmp_path, photo, codec) -> None:
    path = tmp_path / "photo.odic"
    photo.save(path, quality=40, observer="machine")
    data = path.read_bytes()
    assert data[:4] == b"ODIC"
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("ODIC", photo.size, "RGB")
        assert im.get_format_mimetype() == "image/x-odic"
        assert im.info["observer"] == 1.0 and im.info["quality"] == 40.0
        assert im.info["model_id"] == codec.model_id
        im.load()
        got = np.asarray(im)
    # Exactly what the API decodes from the same bytes.
    assert np.array_equal(got, np.asarray(codec.decompress(data)))


def test_save_with_bpp_and_size_bytes(photo) -> None:
    buf = io.BytesIO()
    photo.save(buf, format="ODIC", bpp=0.6)
    bpp = len(buf.getvalue()) * 8 / (photo.width * photo.height)
    assert 0.3 < bpp < 1.2
    small = io.BytesIO()
    photo.save(small, format="ODIC", size_bytes=600, observer=0.5)
    assert len(small.getvalue()) <= 600
    assert Image.open(io.BytesIO(small.getvalue())).info["observer"] == 0.5


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "I;16"])
def test_modes_come_back(photo, mode) -> None:
    gray16 = np.asarray(photo.convert("L")).astype(np.uint16) * 257
    src = photo.convert(mode) if mode != "I;16" else Image.fromarray(gray16)
    buf = io.BytesIO()
    src.save(buf, format="ODIC", quality=60)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.mode == src.mode
        im.load()
        assert im.size == src.size
        peak = 65535.0 if mode == "I;16" else 255.0
        assert _psnr(np.asarray(src), np.asarray(im), peak) > 27  # measured 30.7 (RGBA) to 37.9 dB (LA)
        if "A" in mode:  # alpha is lossless
            assert np.array_equal(np.asarray(im.getchannel("A")), np.asarray(src.getchannel("A")))


def test_palette_image_is_saved_as_rgb(photo) -> None:
    buf = io.BytesIO()
    palette = photo.convert("P")
    palette.save(buf, format="ODIC")
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.mode == "RGB"
        im.load()
        assert _psnr(np.asarray(palette.convert("RGB")), np.asarray(im)) > 18  # measured 21.6 dB (dithered)


def test_open_reads_the_header_only(photo, monkeypatch) -> None:
    buf = io.BytesIO()
    photo.save(buf, format="ODIC")

    def no_model(model=None):  # noqa: ANN001, ANN202
        raise AssertionError("the model must not be needed to open a file")

    monkeypatch.setattr(pillow_plugin, "_codec", no_model)
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.size == photo.size
    with pytest.raises(AssertionError):
        im.load()


def test_set_codec_is_used(photo, codec, monkeypatch) -> None:
    calls = []

    class Spy:
        def decompress(self, data):  # noqa: ANN001, ANN202
            calls.append(len(data))
            return codec.decompress(data)

    buf = io.BytesIO()
    photo.save(buf, format="ODIC", codec=codec)
    pillow_plugin.set_codec(Spy())  # type: ignore[arg-type]
    try:
        Image.open(io.BytesIO(buf.getvalue())).load()
    finally:
        pillow_plugin.set_codec(None)
    assert calls == [len(buf.getvalue())]


def test_corrupt_and_foreign_files_are_not_identified(photo, tmp_path) -> None:
    buf = io.BytesIO()
    photo.save(buf, format="ODIC")
    bad = bytearray(buf.getvalue())
    bad[20] ^= 0xFF  # breaks the CRC
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(bytes(bad)))
    png = tmp_path / "x.png"
    photo.save(png)
    assert Image.open(png).format == "PNG"


def test_decompression_bomb_guard(photo, monkeypatch) -> None:
    buf = io.BytesIO()
    photo.save(buf, format="ODIC")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the image has 6144 pixels: > 2x the limit
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(buf.getvalue()))


def test_odic_module_exposes_plugin() -> None:
    assert odic.pillow_plugin is pillow_plugin
