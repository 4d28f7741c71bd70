"""Encoder refinement (odic.refine): ordinary streams, a real rate-distortion gain, strict options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import odic
from odic.cli import main
from odic.losses import DEFAULT_MACHINE_SCALE, human_distortion, machine_distortion
from odic.model import lmbda_for
from odic.model.conditioning import QUALITY_CODE_MAX
from odic.observers import create_observer
from odic.refine import (
    DEFAULT_SHIFT,
    HUMAN_LR,
    HUMAN_REFINE_METHOD,
    MACHINE_LR,
    MSE_WEIGHT,
    REFINE_METHOD,
    refine_latents,
    step_sizes,
)

from .conftest import smooth_image


@pytest.fixture(scope="module")
def crop(shared_data) -> Image.Image:
    """A 192x192 piece of a real photo (the gain is a property of photos, not of test patterns)."""
    return Image.open(shared_data / "kodak" / "kodim23.png").convert("RGB").crop((256, 128, 448, 320))


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def _cost(codec, img: Image.Image, data: bytes, alpha: float, observer) -> tuple[float, float]:
    """(``lambda * D_alpha + bpp`` measured on the real stream and decoded pixels, D_machine)."""
    x, x_hat = _tensor(img), _tensor(codec.decompress(data))
    bpp = len(data) * 8 / (img.width * img.height)
    with torch.no_grad():
        d_h = float(human_distortion(x, x_hat, MSE_WEIGHT))
        d_m = DEFAULT_MACHINE_SCALE * float(machine_distortion(observer, x, x_hat)) if alpha else 0.0
    q = odic.Codec.info(data)["quality"] / 100
    lmbda = float(lmbda_for(torch.tensor(q), codec.model.config))
    return lmbda * ((1 - alpha) * d_h + alpha * d_m) + bpp, d_m


def test_refine_zero_writes_the_fast_encoders_bytes(codec):
    img = Image.fromarray(smooth_image(70, 90))
    assert codec.compress(img, quality=40, refine=0) == codec.compress(img, quality=40)


def test_refined_stream_is_an_ordinary_stream(codec, crop):
    fast = codec.compress(crop, quality=30)
    refined = codec.compress(crop, quality=30, refine=8)
    assert refined != fast
    info_fast, info_refined = odic.Codec.info(fast), odic.Codec.info(refined)
    for key in ("model_id", "width", "height", "quality", "observer"):
        assert info_refined[key] == info_fast[key]
    out = codec.decompress(refined)  # the decoder's stream verification accepts it
    assert out.size == crop.size
    assert codec.decompress(refined).tobytes() == out.tobytes()


@pytest.mark.parametrize(("alpha", "shift"), [(0.0, 0), (1.0, 0), (1.0, 8)])
def test_refinement_lowers_the_measured_rate_distortion_cost(codec, crop, alpha, shift):
    """On the real stream and the decoded pixels, not the training estimate.

    Measured (kodim23 crop, quality 30, 10 steps, the default schedules: human 0.005 -> 0.0005,
    machine 0.005 constant): human cost 0.3315 -> 0.3213 (-3.1%), machine cost 0.2508 -> 0.2330
    without views (-7.1%), -> 0.2424 with the default views on odd steps (-3.4%: every other step
    fits a shifted view, not this exact image); the test asks for 1% and 2%.
    """
    observer = create_observer("efficientnet_lite0") if alpha else None
    fast = codec.compress(crop, quality=30, observer=alpha)
    refined = codec.compress(crop, quality=30, observer=alpha, refine=10, refine_shift=shift)
    cost_fast, dm_fast = _cost(codec, crop, fast, alpha, observer)
    cost_refined, dm_refined = _cost(codec, crop, refined, alpha, observer)
    assert cost_refined < cost_fast * (0.98 if alpha else 0.99), (cost_fast, cost_refined)
    if alpha:
        assert dm_refined < dm_fast


def test_refine_latents_keeps_the_networks_guess_when_no_step_helps(codec, crop):
    """With a step size of 0 nothing moves, and the analysis transform's latents come back.

    Both ends of the cosine schedule are 0: with ``lr=0`` alone the schedule rises towards the
    observer's default final step size after the first step.
    """
    x = odic.imageio.to_tensor(np.array(crop))
    qcode = QUALITY_CODE_MAX // 3
    y0, z0 = codec.model.analyse(x, qcode, 0)
    y, z = refine_latents(codec.model, x, qcode, 0, steps=2, lr=0.0, final_lr=0.0)
    assert torch.equal(y, y0) and torch.equal(z, z0)
    assert all(p.requires_grad for p in codec.model.parameters())  # the model is left as it was


def test_step_sizes_run_from_the_human_to_the_machine_schedule():
    assert step_sizes(0.0) == pytest.approx(HUMAN_LR) and step_sizes(1.0) == pytest.approx(MACHINE_LR)
    mid = step_sizes(0.5)
    for k in range(2):
        assert min(HUMAN_LR[k], MACHINE_LR[k]) <= mid[k] <= max(HUMAN_LR[k], MACHINE_LR[k])
        assert mid[k] == pytest.approx((HUMAN_LR[k] * MACHINE_LR[k]) ** 0.5)
    assert MACHINE_LR == (0.005, 0.005)  # the schedule the benchmark measured best (docs/results.md)


def test_machine_views_are_seeded_and_change_the_search(codec, crop):
    """The random views (on by default) come from a fixed seed: one image, one stream. They steer the latents."""
    observer = create_observer("efficientnet_lite0")
    x = odic.imageio.to_tensor(np.array(crop))
    qcode = QUALITY_CODE_MAX // 3
    first = refine_latents(codec.model, x, qcode, 1000, steps=3, observer=observer, shift=8)
    again = refine_latents(codec.model, x, qcode, 1000, steps=3, observer=observer, shift=8)
    plain = refine_latents(codec.model, x, qcode, 1000, steps=3, observer=observer, shift=0)
    assert DEFAULT_SHIFT == 8  # what the benchmark measured best (docs/results.md)
    default = refine_latents(codec.model, x, qcode, 1000, steps=3, observer=observer)
    assert all(torch.equal(a, b) for a, b in zip(first, default, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], plain[0])
    assert codec.compress(crop, observer=1, refine=3) == codec.compress(crop, observer=1, refine=3)
    viewed = codec.compress(crop, observer=1, refine=3, refine_shift=8)
    assert viewed == codec.compress(crop, observer=1, refine=3, refine_shift=8)
    assert viewed != codec.compress(crop, observer=1, refine=3, refine_shift=0)
    assert viewed == codec.compress(crop, observer=1, refine=3)
    assert codec.decompress(viewed).size == crop.size


@pytest.mark.parametrize("shift", [-1, 2.5, True, 65])
def test_bad_refine_shift_is_refused(codec, shift):
    img = Image.fromarray(smooth_image(40, 40))
    with pytest.raises(ValueError, match="refine_shift must be a whole number of pixels from 0 to 64"):
        codec.compress(img, observer=1, refine=2, refine_shift=shift)


def test_refine_with_tiles_tiny_images_and_a_size_budget(codec):
    img = Image.fromarray(smooth_image(130, 150, seed=3))
    data = codec.compress(img, quality=40, tile=64, refine=2)
    assert odic.Codec.info(data)["tiles"] > 1
    assert codec.decompress(data).size == img.size
    tiny = Image.fromarray(smooth_image(20, 30))  # below MS-SSIM's smallest size: the padded block is scored
    assert codec.decompress(codec.compress(tiny, refine=2)).size == tiny.size
    budget = len(codec.compress(img, quality=40))
    fitted = codec.compress(img, size_bytes=budget, refine=2)
    assert len(fitted) <= budget


@pytest.mark.parametrize("steps", [-1, 2.5, True, "3", 10_000])
def test_bad_refine_steps_are_refused(codec, steps):
    img = Image.fromarray(smooth_image(40, 40))
    with pytest.raises(ValueError, match="refine must be a whole number"):
        codec.compress(img, refine=steps)


def test_unknown_refine_classifier_is_refused(codec):
    img = Image.fromarray(smooth_image(40, 40))
    with pytest.raises(ValueError, match="refine classifier: unknown observer 'nope'"):
        codec.compress(img, observer="machine", refine=2, refine_classifier="nope")
    # The classifier only matters for a machine share: the human observer ignores it.
    assert codec.compress(img, observer="human", refine=1, refine_classifier="nope")


def test_cli_refine(tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(smooth_image(64, 80)).save(src)
    out = tmp_path / "out.odic"
    assert main(["compress", str(src), "-o", str(out), "--observer", "machine", "--refine", "2"]) == 0
    assert odic.Codec.info(out.read_bytes())["observer"] == 1.0
    capsys.readouterr()
    bad = tmp_path / "bad.odic"
    assert main(["compress", str(src), "-o", str(bad), "--refine", "-3"]) != 0
    err = capsys.readouterr().err
    assert "--refine must be from 0 to" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["compress", str(src), "-o", str(bad), "--observer", "1", "--refine", "2",
                 "--refine-classifier", "nope"]) != 0
    assert "unknown observer 'nope'" in capsys.readouterr().err
    assert main(["compress", str(src), "-o", str(bad), "--observer", "1", "--refine", "2",
                 "--refine-shift", "99"]) != 0
    assert "--refine-shift must be from 0 to 64 pixels, got 99" in capsys.readouterr().err
    assert not bad.exists()
    # Three steps: with two, the one update that views change can move the latents by less than a
    # quantisation step (odic-base-enc2-s42190 on this image wrote the same stream either way).
    default, viewed, plain = (tmp_path / f"{name}.odic" for name in ("default", "viewed", "plain"))
    for path, shift in ((default, []), (viewed, ["--refine-shift", "8"]), (plain, ["--refine-shift", "0"])):
        assert main(["compress", str(src), "-o", str(path), "--observer", "1", "--refine", "3", *shift]) == 0
    assert viewed.read_bytes() == default.read_bytes()  # views are the default
    assert plain.read_bytes() != default.read_bytes()


def test_pillow_save_refine(tmp_path):
    img = Image.fromarray(smooth_image(64, 64))
    path = tmp_path / "p.odic"
    img.save(path, quality=40, refine=2)
    with Image.open(path) as back:
        assert back.size == img.size
    viewed = tmp_path / "v.odic"
    img.save(viewed, quality=40, observer=1, refine=2, refine_shift=8)
    with Image.open(viewed) as back:
        assert back.size == img.size
    with pytest.raises(ValueError, match="refine_shift must be"):
        img.save(tmp_path / "bad.odic", observer=1, refine=2, refine_shift=-1)


def test_bench_codec_refine_option():
    from odic.codecs import codec_from_spec

    c = codec_from_spec("odic:alpha=1:q=30:refine=2")
    assert c.options()["refine"] == 2 and c.options()["refine_classifier"] == "efficientnet_lite0"
    assert c.options()["refine_method"] == REFINE_METHOD  # a changed search gives new rows
    # The human observer's streams depend on its own schedule only: machine changes keep its rows.
    human = codec_from_spec("odic:alpha=0:q=30:refine=2").options()
    assert human["refine_method"] == HUMAN_REFINE_METHOD and str(MACHINE_LR) not in human["refine_method"]
    assert "refine" not in codec_from_spec("odic:alpha=1").options()  # cached rows stay valid
    with pytest.raises(ValueError, match="refine must be a whole number"):
        codec_from_spec("odic:refine=many")
    viewed = codec_from_spec("odic:alpha=1:q=30:refine=2:refine_shift=8")
    assert viewed.options() == c.options() and c.options()["refine_shift"] == DEFAULT_SHIFT  # same streams, same rows
    plain = codec_from_spec("odic:alpha=1:q=30:refine=2:refine_shift=0").options()
    assert plain["refine_shift"] == 0 and "refine_views" not in plain and plain != c.options()
    assert "refine_shift" not in human  # the human search has no views
    with pytest.raises(ValueError, match="refine_shift must be a whole number"):
        codec_from_spec("odic:refine=2:refine_shift=wide")
