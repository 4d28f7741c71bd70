"""odic.transforms.Compress: odic and classical codecs inside torchvision pipelines."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from odic.codecs import create_codec
from odic.transforms import Compress, encode_at_bpp

from .conftest import smooth_image


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(smooth_image(64, 80, seed=5))


def _bpp(c: Compress, img: Image.Image) -> float:
    """The rate of the last call: set, and a lossy rate (well below raw RGB's 24 bpp)."""
    assert c.last_bpp is not None and 0 < c.last_bpp < 12
    return c.last_bpp


@pytest.mark.parametrize("spec", ["jpeg", "webp", "hevc", "jpeg2000"])
def test_classical_codecs_hit_the_bpp(photo, spec) -> None:
    c = Compress(codec=spec, bpp=0.8)
    out = c(photo)
    assert isinstance(out, Image.Image) and out.size == photo.size and out.mode == "RGB"
    assert abs(np.log(_bpp(c, photo) / 0.8)) < 0.35  # classical settings are coarse on tiny images
    assert not np.array_equal(np.asarray(out), np.asarray(photo))  # it is lossy


def test_encode_at_bpp_searches_both_directions(photo) -> None:
    pixels = photo.width * photo.height
    for spec in ("jpeg", "jpeg2000"):  # quality rises with rate; compression ratio falls with it
        codec = create_codec(spec)
        data, setting = encode_at_bpp(codec, photo, 1.0)
        assert codec.quality_range[0] <= setting <= codec.quality_range[1]
        assert 0.6 < len(data) * 8 / pixels < 1.6
    with pytest.raises(ValueError):
        encode_at_bpp(create_codec("jpeg"), photo, 0.0)


def test_quality_is_the_codecs_own_setting(photo) -> None:
    lo, hi = Compress(codec="jpeg", quality=10), Compress(codec="jpeg", quality=90)
    lo(photo), hi(photo)
    assert _bpp(lo, photo) < _bpp(hi, photo)


def test_odic_observer_and_bpp(photo, codec) -> None:
    # A target inside this model's range for this photo (the bundled model's range is narrow).
    npx = photo.width * photo.height
    lo, hi = (len(codec.compress(photo, q, 1.0)) * 8 / npx for q in (10, 90))
    target = float(np.sqrt(lo * hi))
    c = Compress(codec="odic", bpp=target, observer="machine")
    assert c.observer == 1.0 and "odic" in repr(c)
    out = c(photo)
    assert out.size == photo.size and out.mode == "RGB"
    assert abs(np.log(_bpp(c, photo) / target)) < 0.1
    q = Compress(codec="odic", quality=30, observer="human")
    expected = codec.decompress(codec.compress(photo, 30, 0.0))
    assert np.array_equal(np.asarray(q(photo)), np.asarray(expected))


def test_returns_the_type_it_got(photo) -> None:
    c = Compress(codec="jpeg", quality=50)
    x = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255
    y = c(x)
    assert y.shape == x.shape and y.dtype == x.dtype and 0 <= float(y.min()) and float(y.max()) <= 1
    assert torch.allclose(y, x, atol=0.5) and not torch.equal(y, x)
    batch = torch.stack([x, x.flip(-1)])
    assert c(batch).shape == batch.shape
    u8 = (x * 255).round().to(torch.uint8)
    assert c(u8).dtype == torch.uint8
    gray = u8[:1]
    assert c(gray).shape == gray.shape
    arr = np.asarray(photo)
    assert c(arr).shape == arr.shape and c(arr).dtype == np.uint8
    assert c(arr[..., 0]).shape == arr.shape[:2]
    assert c(photo.convert("L")).mode == "L"
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(80, dtype=np.uint8), (64, 1))))
    out = c(rgba)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])


def test_in_a_torchvision_compose(photo) -> None:
    T = pytest.importorskip("torchvision.transforms")
    pipeline = T.Compose([T.CenterCrop(48), Compress(codec="webp", bpp=1.0), T.ToTensor()])
    x = pipeline(photo)
    assert x.shape == (3, 48, 48)
    again = pickle.loads(pickle.dumps(pipeline))  # DataLoader workers pickle the transform
    assert torch.equal(again(photo), x)  # deterministic


def test_bad_arguments(photo) -> None:
    with pytest.raises(ValueError):
        Compress(codec="jpeg", bpp=0.5, quality=50)
    with pytest.raises(ValueError):
        Compress(codec="odic", observer="cat")
    with pytest.raises(KeyError):
        Compress(codec="no-such-codec")
    with pytest.raises(TypeError):
        Compress(codec="jpeg")("not an image")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Compress(codec="jpeg")(torch.zeros(5, 8, 8))
