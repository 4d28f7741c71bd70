"""Encoder-side search: fit one image's latents to its observer; the decoder never changes.

The analysis transform is amortised: one network guesses good latents for every image, and a
small, briefly trained one guesses far from the best. Refinement (Campos et al. 2019, "Content
adaptive optimization for neural image compression"; Yang et al. 2020) descends, for this image
only, the rate-distortion loss the model was trained on, ``lambda(q) * D_alpha + bpp``, with
respect to the latents ``y`` and ``z``, starting from the network's guess. Rounding is
straight-through, as in training's decoder input; the rate is the entropy models' estimate at
the rounded values. The latents with the lowest loss seen are kept (the first is the network's
own), so refining never makes the estimated loss worse.

What it costs: each step is one synthesis and, for a machine share (alpha > 0), one classifier
pass, forward and backward: about 0.6 s per step for a 768x512 image on 2 cores. What it buys and
how it was measured: docs/results.md ("Encoder refinement").

The stream is an ordinary one: it decodes with any odic of the same model, bit for bit like any
other, because only the encoder's choice of symbols changed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .losses import observer_distortion, rate_bpp
from .model import OdicModel, lmbda_for, round_ste
from .observers import Observer

#: Adam's step on the gained latents (whose quantisation step is 1). Measured at 20 steps: on
#: ImageNet crops (machine observer) the loss still fell at step 20; on kodim01 (human) 0.02 and
#: 0.005 turned up after step 10 and 0.002 kept falling, with the same final MS-SSIM as 0.005
#: (the best latents are kept, so turning up costs only time).
DEFAULT_LR = 0.005
#: MS-SSIM's four downsamplings need a side above 32 pixels (with its smallest, 3 px, window).
MIN_MSSSIM_SIDE = 32
#: The MSE weight of the human distortion, as in training (docs/training.md).
MSE_WEIGHT = 10.0


def refine_latents(model: OdicModel, x: Tensor, quality_code: int, alpha_code: int, steps: int,
                   observer: Observer | None = None, valid: tuple[int, int] | None = None,
                   lr: float = DEFAULT_LR) -> tuple[Tensor, Tensor]:
    """Latents ``(y_s, z_s)`` for a padded batch ``x`` after ``steps`` steps of refinement.

    ``valid`` is the (height, width) of the real image in the top-left of ``x``: the padding is
    not scored. ``observer`` is needed when ``alpha_code`` gives a machine share.
    """
    y0, z0 = model.analyse(x, quality_code, alpha_code)
    if steps <= 0:
        return y0, z0
    q, a = model.condition_tensors(quality_code, alpha_code, x.shape[0], x.device)
    machine = bool((a > 0).any())
    if machine and observer is None:
        raise ValueError("refining for a machine observer needs a classifier")
    observer = observer if machine else None
    h, w = valid or x.shape[-2:]
    if min(h, w) <= MIN_MSSSIM_SIDE:  # too small for MS-SSIM's scales: score the padded block too
        h, w = x.shape[-2:]
    target = x[..., :h, :w]
    eb, gc = model.entropy_bottleneck, model.gaussian_conditional
    with torch.no_grad():
        cond = model.embed(q, a)
        ig, ihg = model.inv_gain(q, a), model.inv_hyper_gain(q, a)
        medians = eb._get_medians().detach().reshape(1, -1, 1, 1)
        lmbda = lmbda_for(q, model.config)
        reference = observer(target, with_features=True) if machine else None
    y = y0.clone().requires_grad_(True)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([y, z], lr=lr)
    best_loss, best = float("inf"), (y0, z0)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            for step in range(steps + 1):
                z_hat = round_ste(z, medians)
                z_lik = _z_likelihoods(eb, z_hat)
                scales, means = model.h_s(z_hat * ihg)
                y_hat = round_ste(y, means)
                y_lik = gc.likelihood_lower_bound(gc._likelihood(y_hat, scales, means))
                x_hat = model.g_s(y_hat * ig, cond)[..., :h, :w]
                bpp = rate_bpp({"y": y_lik, "z": z_lik}, h * w)
                d = observer_distortion(target, x_hat, a, observer, mse_weight=MSE_WEIGHT,
                                        reference=reference)["d_alpha"]
                loss = (lmbda * d + bpp).sum()
                value = float(loss.detach())
                if value < best_loss:  # non-finite values never win
                    best_loss, best = value, (y.detach().clone(), z.detach().clone())
                if step == steps or not torch.isfinite(loss):
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return best


def _z_likelihoods(eb, z_hat: Tensor) -> Tensor:
    """The bottleneck's likelihoods of ``z_hat`` with their gradient (its ``forward`` re-rounds,
    and rounding has none, so z's own rate would not steer z)."""
    b, c, h, w = z_hat.shape
    values = z_hat.permute(1, 0, 2, 3).reshape(c, 1, -1)
    likelihood, _, _ = eb._likelihood(values)
    if eb.use_likelihood_bound:
        likelihood = eb.likelihood_lower_bound(likelihood)
    return likelihood.reshape(c, b, h, w).permute(1, 0, 2, 3)

