"""Round trips, colour modes, header fields and rate control of the core codec."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import odic
from odic.bitstream import ColorMode

from .conftest import smooth_image


@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (257, 129), (512, 768)])
def test_round_trip_sizes(codec, h, w):
    img = Image.fromarray(smooth_image(h, w))
    data = codec.compress(img, quality=60)
    out = codec.decompress(data)
    assert out.size == (w, h) and out.mode == "RGB"
    info = codec.info(data)
    assert (info["width"], info["height"]) == (w, h)
    assert info["bytes"] == len(data)
    assert info["bpp"] == pytest.approx(len(data) * 8 / (w * h))


def test_random_noise_round_trip(codec, rng):
    """Noise cannot be kept, but its colour can: each channel's mean survives (measured within 2 levels)."""
    arr = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    out = np.asarray(codec.decompress(codec.compress(arr, quality=100)))
    assert out.shape == arr.shape and out.dtype == np.uint8
    assert np.abs(out.mean(axis=(0, 1)) - arr.mean(axis=(0, 1))).max() < 6


def test_header_fields(codec):
    data = codec.compress(Image.fromarray(smooth_image(40, 50)), quality=37.25, observer=0.625)
    info = codec.info(data)
    assert info["quality"] == 37.25
    assert info["observer"] == 0.625
    assert info["model_id"] == codec.model_id
    assert info["weights_hash"] == codec.weights_hash.hex()
    assert info["format_version"] == 1
    assert info["mode"] == "RGB"


def test_observer_names(codec):
    img = Image.fromarray(smooth_image(32, 32))
    assert codec.info(codec.compress(img, observer="machine"))["observer"] == 1.0
    assert codec.info(codec.compress(img, observer="human"))["observer"] == 0.0
    with pytest.raises(ValueError, match="observer"):
        codec.compress(img, observer="robot")
    with pytest.raises(ValueError, match="observer"):
        codec.compress(img, observer=1.5)
    with pytest.raises(ValueError, match="quality"):
        codec.compress(img, quality=101)


def test_quality_orders_rate(codec):
    img = Image.fromarray(smooth_image(128, 128))
    sizes = [len(codec.compress(img, quality=q)) for q in (0, 50, 100)]
    assert sizes[0] < sizes[1] < sizes[2]


def _gray(h=33, w=47):
    return smooth_image(h, w)[..., 0]


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    return float(10 * np.log10(peak**2 / np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


# Minimum PSNR against the input in the output's mode: measured values less about 4 dB (the palette
# image is dithered noise to a photo codec; a bilevel image is not a photo at all, so it has none).
@pytest.mark.parametrize(
    "make,mode,expected_mode,min_psnr",
    [
        (lambda: Image.fromarray(_gray()), "L", "L", 28),  # 32.8 dB
        (lambda: Image.fromarray(_gray()).convert("1"), "1", "L", None),
        (lambda: Image.fromarray(np.dstack([smooth_image(33, 47), _gray()])), "RGBA", "RGBA", 27),  # 31.0
        (lambda: Image.fromarray(np.dstack([_gray(), _gray()[::-1]])), "LA", "LA", 31),  # 35.8
        (lambda: Image.fromarray(smooth_image(33, 47)).convert("P"), "P", "RGB", 18),  # 21.7
        (lambda: Image.fromarray(smooth_image(33, 47)).convert("CMYK"), "CMYK", "RGB", 26),  # 29.8
        (lambda: Image.fromarray(_gray().astype(np.uint16) * 257), "I;16", "I;16", 28),  # 32.8
        (lambda: Image.fromarray(smooth_image(33, 47)).convert("YCbCr"), "YCbCr", "RGB", 26),  # 29.9
    ],
)
def test_color_modes(codec, make, mode, expected_mode, min_psnr):
    img = make()
    assert img.mode == mode
    out = codec.decompress(codec.compress(img, quality=80))
    assert out.mode == expected_mode
    assert out.size == img.size
    if min_psnr is not None:  # the pixels are the image's, not just the right shape
        peak = 65535.0 if mode == "I;16" else 255.0
        assert _psnr(np.asarray(img.convert(out.mode)), np.asarray(out), peak) > min_psnr


def test_alpha_is_lossless(codec):
    alpha = (np.arange(33 * 47).reshape(33, 47) % 256).astype(np.uint8)
    img = Image.fromarray(np.dstack([smooth_image(33, 47), alpha]))
    out = codec.decompress(codec.compress(img))
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_palette_with_transparency_keeps_alpha(codec):
    """The palette's transparent index becomes an exact alpha plane."""
    img = Image.fromarray(smooth_image(20, 20)).convert("P")
    index = np.asarray(img)
    img.info["transparency"] = int(index[0, 0])
    clear = index == index[0, 0]
    assert 0 < clear.sum() < clear.size
    out = codec.decompress(codec.compress(img))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.where(clear, 0, 255))


def test_numpy_and_tensor_inputs(codec):
    """The same picture as uint8, uint16, float or a CHW tensor is coded as the same picture."""
    arr = smooth_image(40, 56)
    streams = [codec.compress(x, quality=70) for x in (arr, arr.astype(np.float32) / 255,
                                                        torch.from_numpy(arr).permute(2, 0, 1))]
    assert streams[1] == streams[0] and streams[2] == streams[0]
    deep = codec.compress(arr.astype(np.uint16) * 257, quality=70)  # 16-bit: another header mode, same pixels
    out = codec.decompress(deep)
    assert out.size == (56, 40)
    assert np.array_equal(np.asarray(out), np.asarray(codec.decompress(streams[0])))
    info = codec.info(codec.compress(arr.astype(np.uint16) * 257))
    assert info["mode"] == ColorMode.RGB16.name
    assert codec.info(codec.compress(arr[..., 0]))["mode"] == "L"


def test_exif_orientation_applied(codec, tmp_path):
    img = Image.fromarray(smooth_image(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes())
    out = codec.decompress(codec.compress(path))
    assert out.size == (20, 40)


def test_batch_path_matches_single(codec):
    x = torch.stack([torch.from_numpy(smooth_image(64, 80, s)).permute(2, 0, 1) for s in range(3)]).float() / 255
    streams = codec.compress_batch(x, quality=40, observer=0.5)
    batch = codec.decompress_batch(streams)
    assert batch.shape == x.shape
    for i, s in enumerate(streams):
        single = np.asarray(codec.decompress(s))
        assert np.array_equal((batch[i] * 255).round().byte().permute(1, 2, 0).numpy(), single)
        # same bits as the single-image path
        img = Image.fromarray((x[i] * 255).round().byte().permute(1, 2, 0).numpy())
        assert codec.compress(img, quality=40, observer=0.5) == s


def test_tiled_round_trip(codec):
    img = Image.fromarray(smooth_image(200, 300))
    data = codec.compress(img, tile=128)
    info = codec.info(data)
    assert info["tiles"] == 6 and info["tile_size"] == 128
    out = codec.decompress(data)
    assert out.size == (300, 200)
    assert _psnr(np.asarray(img), np.asarray(out)) > 27  # measured 31.1 dB: the tiles land where they belong


def test_size_target_fits(codec):
    img = Image.fromarray(smooth_image(128, 192))
    big = len(codec.compress(img, quality=90))
    limit = big // 2
    data = codec.compress(img, size_bytes=limit)
    assert len(data) <= limit


@pytest.mark.parametrize("name,targets", [("kodim05.png", (0.5, 1.0)), ("kodim23.png", (0.25, 0.5))])
def test_bpp_target_on_kodak(codec, shared_data, name, targets):
    img = Image.open(shared_data / "kodak" / name)
    for target in targets:
        data = codec.compress(img, bpp=target)
        got = len(data) * 8 / (img.width * img.height)
        assert abs(got - target) / target < 0.10, (name, target, got)


def test_unreachable_bpp_warns(codec):
    img = Image.fromarray(smooth_image(64, 64))
    with pytest.warns(UserWarning, match="outside this model's range"):
        data = codec.compress(img, bpp=0.0001)
    assert data == codec.compress(img, quality=0)


def test_shipped_model_zoo(codec):
    """The shipped models are listed (default first), load by name, and each decodes the other's streams."""
    infos = odic.list_models()
    assert [i.name for i in infos][:1] == ["odic-base"] and infos[0].default
    by_name = {i.name: i for i in infos}
    assert {"odic-base", "odic-people", "odic-people-cb9000-s36245", "odic-people-s36245", "odic-base-cc9100-s38515",
            "odic-base-cb14000-s38515", "odic-base-s38515", "odic-base-s29033"} <= set(by_name)
    for info in infos:  # a name is the id without its step count, or (an earlier default kept) the id itself
        assert info.model_id.endswith(f"-s{info.steps}")
        assert info.model_id.startswith(info.name + "-") or info.model_id == info.name
        assert info.summary and 1e6 < info.size_bytes < 25e6
    assert len({i.model_id for i in infos}) == len(infos)
    people = odic.load("odic-people")
    assert people.model_id == by_name["odic-people"].model_id != codec.model_id
    img = Image.fromarray(smooth_image(48, 64))
    stream, base_stream = people.compress(img, quality=40), codec.compress(img, quality=40)
    assert stream != base_stream and codec.info(stream)["model_id"] == people.model_id
    assert np.array_equal(np.asarray(codec.decompress(stream)), np.asarray(people.decompress(stream)))
    assert np.array_equal(np.asarray(people.decompress(base_stream)), np.asarray(codec.decompress(base_stream)))


def test_load_by_name_and_unknown():
    assert odic.load("odic-base").model_id
    with pytest.raises(FileNotFoundError, match="not installed"):
        odic.load("no-such-model")


def test_streams_of_an_earlier_installed_model_keep_decoding(codec, tmp_path, monkeypatch):
    """A release installs new weights beside the old file; the default codec finds the old one by model id."""
    import shutil

    from odic import weights

    payload = weights.read_weights_file(weights.resolve("odic-base"))
    older, _ = weights.build_model(payload)
    with torch.no_grad():  # a different decoder, as an earlier release would have
        next(older.g_s.parameters()).mul_(0.9)
    installed = tmp_path / "weights"
    installed.mkdir()
    shutil.copy(weights.resolve("odic-base"), installed / "odic-base.pt")
    weights.export_weights(older, installed / "odic-older.pt", "odic-older-test")
    monkeypatch.setattr(weights, "PACKAGE_WEIGHTS_DIR", installed)

    img = Image.fromarray(smooth_image(48, 64))
    old_stream = odic.load("odic-older").compress(img, quality=40)
    assert codec.info(old_stream)["model_id"] == "odic-older-test"
    expected = np.asarray(odic.load(installed / "odic-older.pt").decompress(old_stream))
    assert np.array_equal(np.asarray(codec.decompress(old_stream)), expected)

    (installed / "odic-older.pt").unlink()
    with pytest.raises(FileNotFoundError, match="needs model 'odic-older-test'"):
        codec.decompress(old_stream)
