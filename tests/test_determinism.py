"""Decoding is bit-exact across processes and thread counts (the entropy parameters are integers).

The entropy parameters (scale indexes and means of y) come from the decoded hyper-latent through
``OdicModel.entropy_parameters``: if the decoder's numbers moved by one float rounding, entropy
decoding would fall out of step. These tests move the float inputs of that path (the weights, the
hyper-latent, the kernels' summation order) and check that the integers do not move, while the float
path (``HyperSynthesis.forward``, what training uses) does: so each test could see a float leak.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from odic.entropy import ACT_FRAC_BITS, WEIGHT_FRAC_BITS
from odic.model.conditioning import GAIN_FRAC_BITS

from .conftest import smooth_image

ENCODE = """
import sys, torch, numpy as np, odic
from PIL import Image
torch.set_num_threads(1)
codec = odic.load()
img = Image.open(sys.argv[1])
for i, (q, a) in enumerate([(10, 0), (55, 1), (90, 0.5)]):
    data = codec.compress(img, quality=q, observer=a)
    open(f"{sys.argv[2]}.{i}.odic", "wb").write(data)
    np.save(f"{sys.argv[2]}.{i}.npy", np.asarray(codec.decompress(data)))
"""

DECODE = """
import sys, torch, numpy as np, odic
torch.set_num_threads(2)
codec = odic.load()
for i in range(3):
    np.save(f"{sys.argv[1]}.{i}.dec2.npy", np.asarray(codec.decompress(open(f"{sys.argv[1]}.{i}.odic", "rb").read())))
"""

QCODE, ACODE = 6173, 389  # codes off the grid: every gain table interpolates with uneven weights


def test_encode_1_thread_decode_other_process_2_threads(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(smooth_image(200, 328, seed=3)).save(src)
    base = str(tmp_path / "s")
    subprocess.run([sys.executable, "-c", ENCODE, str(src), base], check=True)
    subprocess.run([sys.executable, "-c", DECODE, base], check=True)
    for i in range(3):
        a = np.load(f"{base}.{i}.npy")
        b = np.load(f"{base}.{i}.dec2.npy")
        assert a.shape == b.shape
        assert np.array_equal(a, b), f"setting {i}: {int((a != b).sum())} pixels differ"


# ------------------------------------------------------------------ the integer entropy parameters
def _hyper_latent(model, seed: int = 0, size: tuple[int, int] = (4, 6)) -> torch.Tensor:
    """A decoded hyper-latent as the entropy bottleneck gives it: integer symbols plus the medians.

    Symbols of spread 3 reach |z| ~ 10, what the shipped model codes at mid to high rates.
    """
    g = torch.Generator().manual_seed(seed)
    symbols = torch.round(torch.randn(1, model.config.N, *size, generator=g) * 3)
    return symbols + model.z_medians()


def _within_cell(x: torch.Tensor, frac_bits: int, seed: int) -> torch.Tensor:
    """``x`` moved by random float noise that keeps ``round(x * 2**frac_bits)``: below the fixed-point step.

    Each value moves by up to half its distance to the nearest rounding boundary (values on a
    boundary stay put), so every one can move, and none can change its fixed-point value.
    """
    t = x.detach().double() * float(1 << frac_bits)
    margin = 0.5 - (t - torch.round(t)).abs()
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    moved = ((t + u * margin * 0.5) / float(1 << frac_bits)).to(x.dtype)
    same = torch.round(moved.double() * float(1 << frac_bits)) == torch.round(t)
    return torch.where(same, moved, x.detach())  # float32 rounding of the sum may not cross either


def _float_path(model, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What training computes for the same numbers: float gains, float hyper-synthesis."""
    q, a = model.condition_tensors(QCODE, ACODE, 1, "cpu")
    with torch.no_grad():
        return model.h_s(z_hat * model.inv_hyper_gain(q, a))


def test_entropy_parameters_ignore_weight_noise_below_the_fixed_point_step(codec):
    """Only the weights' fixed-point values reach the parameters: noise below their step changes nothing."""
    model = codec.model
    z = _hyper_latent(model)
    noisy = copy.deepcopy(model)
    with torch.no_grad():
        for i, layer in enumerate(noisy.h_s.layers):
            layer.weight.copy_(_within_cell(layer.weight, WEIGHT_FRAC_BITS, seed=2 * i))
            layer.bias.copy_(_within_cell(layer.bias, WEIGHT_FRAC_BITS + ACT_FRAC_BITS, seed=2 * i + 1))
        gains = noisy.inv_hyper_gain.gains
        kept = gains > 2e-3  # the clamped (unused) channels stay at the clamp
        gains.copy_(torch.where(kept, _within_cell(gains, GAIN_FRAC_BITS, seed=9), gains))
    # The perturbation is real: the float path moves ...
    moved = [(a - b).abs().max().item() for a, b in zip(_float_path(model, z), _float_path(noisy, z), strict=True)]
    assert min(moved) > 1e-6, moved
    # ... and the integer path does not.
    scales, means = model.entropy_parameters(z, QCODE, ACODE)
    scales_n, means_n = noisy.entropy_parameters(z, QCODE, ACODE)
    assert torch.equal(scales, scales_n), f"{int((scales != scales_n).sum())} scales moved"
    assert torch.equal(means, means_n), f"{int((means != means_n).sum())} means moved"


def test_entropy_parameters_ignore_hyper_latent_noise_below_the_fixed_point_step(codec):
    """The hyper-latent enters as fixed point: values that round to the same integers give the same parameters."""
    model = codec.model
    z = _hyper_latent(model, seed=1)
    z_noisy = _within_cell(z, ACT_FRAC_BITS, seed=3)
    assert (z_noisy != z).float().mean() > 0.5  # most values did move
    moved = [(a - b).abs().max().item() for a, b in zip(_float_path(model, z), _float_path(model, z_noisy),
                                                         strict=True)]
    assert min(moved) > 1e-6, moved
    scales, means = model.entropy_parameters(z, QCODE, ACODE)
    scales_n, means_n = model.entropy_parameters(z_noisy, QCODE, ACODE)
    assert torch.equal(scales, scales_n), f"{int((scales != scales_n).sum())} scales moved"
    assert torch.equal(means, means_n), f"{int((means != means_n).sum())} means moved"
    # they are integers (the fixed-point values), not floats that happen to agree
    assert torch.equal(means, torch.round(means)) and torch.equal(scales, torch.round(scales))


def test_entropy_parameters_ignore_summation_order(codec):
    """Reordering the hyper-synthesis' channels changes every float sum's order, not the integers.

    Another thread count, BLAS or device sums in another order; permuting the first layer's input
    channels (and the weights with them) is that, on any machine.
    """
    model = codec.model
    # Reordering moves the float path's outputs by ~1e-6, and a few in 10**5 of them cross a 2**-10
    # rounding boundary: a float leak shows (~20 values) only on a hyper-latent this large (a 512x768 image's).
    z = _hyper_latent(model, seed=2, size=(8, 12))
    perm = torch.randperm(model.config.N, generator=torch.Generator().manual_seed(0))
    shuffled = copy.deepcopy(model)
    with torch.no_grad():
        first = shuffled.h_s.layers[0]  # ConvTranspose2d: weight is (in, out, k, k)
        first.weight.copy_(first.weight[perm])
        gains = shuffled.inv_hyper_gain.gains  # (levels, 2 observers, N)
        gains.copy_(gains[..., perm])
    z_perm = z[:, perm]
    a, b = _float_path(model, z), _float_path(shuffled, z_perm)
    assert not (torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])), "the float sums did not change order"
    scales, means = model.entropy_parameters(z, QCODE, ACODE)
    scales_p, means_p = shuffled.entropy_parameters(z_perm, QCODE, ACODE)
    assert torch.equal(scales, scales_p) and torch.equal(means, means_p)


@contextlib.contextmanager
def _onednn(enabled: bool) -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # oneDNN's TF32 notice when toggling the flag
        with torch.backends.mkldnn.flags(enabled=enabled):
            yield


def test_entropy_parameters_ignore_thread_count_and_onednn(codec):
    """The same integers with 1 or 2 threads and with oneDNN on or off."""
    model = codec.model
    z = _hyper_latent(model, seed=4)
    threads = torch.get_num_threads()
    results = []
    try:
        for n, onednn in ((1, True), (2, True), (1, False), (2, False)):
            torch.set_num_threads(n)
            with _onednn(onednn):
                results.append(model.entropy_parameters(z, QCODE, ACODE))
    finally:
        torch.set_num_threads(threads)
    for scales, means in results[1:]:
        assert torch.equal(scales, results[0][0]) and torch.equal(means, results[0][1])


# ------------------------------------------------------------------ the synthesis (pixels)
def _stream(model, h: int, w: int) -> dict:
    x = torch.from_numpy(smooth_image(h, w, seed=0)).permute(2, 0, 1)[None].float() / 255
    return model.compress(x, 9000, 0)


def _decode(model, out: dict, threads: int, onednn: bool) -> torch.Tensor:
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with _onednn(onednn):
            return model.decompress(out["strings"], out["shape"], 9000, 0)["x_hat"]
    finally:
        torch.set_num_threads(saved)


def test_synthesis_ignores_the_callers_onednn_setting(codec):
    """The strips turn oneDNN on inside the decode, whatever the caller set."""
    model = codec.model
    out = _stream(model, 128, 192)
    assert torch.equal(_decode(model, out, 1, onednn=True), _decode(model, out, 1, onednn=False))


@pytest.mark.parametrize("h,w", [(128, 192), (448, 128)])  # one strip; three strips of 16, 16 and 4 latent rows
def test_synthesis_does_not_depend_on_the_thread_count(codec, h, w):
    """The decoded image is the same with 1, 2 and 3 threads (the docs' promise).

    Multi-threaded kernels split their work by thread count (MKL's sgemm decoded a third of an
    8x12 latent's synthesis values differently with 1 and 2 threads; oneDNN moved a kodim01 pixel);
    each strip runs on one thread, and the thread count only decides how many run at once.
    """
    model = codec.model
    out = _stream(model, h, w)
    ref = _decode(model, out, 1, onednn=True)
    for threads in (2, 3):
        got = _decode(model, out, threads, onednn=True)
        assert torch.equal(got, ref), f"{threads} threads: {int((got != ref).sum())} of {ref.numel()} values differ"
    assert torch.get_num_threads() == 2  # the caller's setting is restored
