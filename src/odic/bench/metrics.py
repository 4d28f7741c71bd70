"""Image metrics, log-bpp interpolation and the Bjontegaard delta rate.

Conventions (documented in docs/bench.md):
* PSNR and MS-SSIM on RGB, 8-bit, data range 255 / 1.0; MS-SSIM via pytorch-msssim with the
  Gaussian window shrunk for small images (``odic.losses.msssim_window``);
* ``interp_at_bpp`` is linear in log(bpp), and null (None) outside the measured bpp range: a
  codec that never reaches 0.125 bpp has no value there, rather than an extrapolated guess;
* ``bd_rate`` is Bjontegaard's delta rate: log(rate) against quality, interpolated piecewise-
  cubically (PCHIP) for each curve and integrated over the shared quality interval (null when
  that covers under 25% of either curve); MS-SSIM in dB (``-10 log10(1 - MS-SSIM)``), as
  CompressAI reports it. Negative = fewer bits than reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from pytorch_msssim import ms_ssim


def _float(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def psnr(original: Image.Image, decoded: Image.Image) -> float:
    """PSNR over all RGB samples (dB); inf for identical images."""
    mse = float(np.mean((_float(original) - _float(decoded)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def msssim(original: Image.Image, decoded: Image.Image) -> float:
    """MS-SSIM on RGB in [0, 1], with a window that five scales allow for this image size."""
    from odic.losses import msssim_window

    a = torch.from_numpy(_float(original) / 255.0).permute(2, 0, 1)[None].float()
    b = torch.from_numpy(_float(decoded) / 255.0).permute(2, 0, 1)[None].float()
    win = msssim_window(*a.shape[-2:])
    with torch.no_grad():
        return float(ms_ssim(b, a, data_range=1.0, size_average=True, win_size=win))


def msssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - v)``, which spreads out values near 1."""
    return -10.0 * math.log10(max(1.0 - value, 1e-12))


def interp_at_bpp(bpp: Sequence[float], values: Sequence[float | None],
                  targets: Sequence[float]) -> list[float | None]:
    """Values at ``targets``, linear in log(bpp) between measured points; None outside the range."""
    pairs = zip(bpp, values, strict=True)
    pts = sorted((b, v) for b, v in pairs if v is not None and b > 0 and math.isfinite(v))
    out: list[float | None] = []
    if not pts:
        return [None] * len(targets)
    xs = np.log([p[0] for p in pts])
    ys = np.array([p[1] for p in pts], dtype=np.float64)
    for t in targets:
        lt = math.log(t)
        if lt < xs[0] - 1e-12 or lt > xs[-1] + 1e-12:
            out.append(None)
            continue
        # np.interp needs increasing x; equal bpp values (rare) are averaged by order.
        out.append(float(np.interp(lt, xs, ys)))
    return out


#: BD-rate is reported only where the curves share at least this fraction of each one's quality span.
BD_MIN_OVERLAP = 0.25


def bd_rate(ref_bpp: Sequence[float], ref_q: Sequence[float], test_bpp: Sequence[float],
            test_q: Sequence[float]) -> float | None:
    """Bjontegaard delta rate of ``test`` against ``ref`` in percent; None where it would be a guess.

    log(rate) is interpolated against quality with a monotone piecewise-cubic (PCHIP, as in
    JVET's BD-rate tools) rather than VCEG-M33's global cubic, which swings wildly (-100% to
    +2000% seen here) on curves that barely overlap. Both interpolants are integrated over the
    shared quality interval, which must cover at least ``BD_MIN_OVERLAP`` of each curve's span;
    each curve needs 2 points with distinct qualities.
    """
    from scipy.interpolate import PchipInterpolator

    def clean(b: Sequence[float], q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        pairs = zip(b, q, strict=True)
        pts = sorted((qq, bb) for bb, qq in pairs if qq is not None and bb > 0 and math.isfinite(qq))
        by_quality: dict[float, list[float]] = {}
        for qq, bb in pts:  # equal qualities (e.g. a saturated metric): average their log-rates
            by_quality.setdefault(qq, []).append(math.log(bb))
        qs = np.array(sorted(by_quality))
        return qs, np.array([float(np.mean(by_quality[v])) for v in qs])

    q1, r1 = clean(ref_bpp, ref_q)
    q2, r2 = clean(test_bpp, test_q)
    if len(q1) < 2 or len(q2) < 2:
        return None
    lo, hi = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if not hi > lo:
        return None
    for q in (q1, q2):
        if (hi - lo) < BD_MIN_OVERLAP * (q.max() - q.min()):
            return None
    f1, f2 = PchipInterpolator(q1, r1), PchipInterpolator(q2, r2)
    avg1 = float(f1.integrate(lo, hi)) / (hi - lo)
    avg2 = float(f2.integrate(lo, hi)) / (hi - lo)
    return float((math.exp(avg2 - avg1) - 1.0) * 100.0)
