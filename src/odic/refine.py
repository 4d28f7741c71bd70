"""Encoder-side search: fit one image's latents to its observer; the decoder never changes.

The analysis transform is amortised: one network guesses good latents for every image, and a
small, briefly trained one guesses far from the best. Refinement (Campos et al. 2019, "Content
adaptive optimization for neural image compression"; Yang et al. 2020) descends, for this image
only, the rate-distortion loss the model was trained on, ``lambda(q) * D_alpha + bpp``, with
respect to the latents ``y`` and ``z``, starting from the network's guess. Rounding is
straight-through, as in training's decoder input; the rate is the entropy models' estimate at
the rounded values. The latents with the lowest loss seen are kept (the first is the network's
own), so refining never makes the estimated loss worse. Optionally (``shift`` > 0) the classifier
sees the image, at every other step, through a new random shift and mirror, so the latents fit
what survives such views rather than one network's quirks (see ``DEFAULT_SHIFT``).

What it costs: each step is one synthesis and, for a machine share (alpha > 0), one classifier
pass, forward and backward: about 0.6 s per step for a 768x512 image on 2 cores. What it buys and
how it was measured: docs/results.md ("Encoder refinement").

The stream is an ordinary one: it decodes with any odic of the same model, bit for bit like any
other, because only the encoder's choice of symbols changed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .losses import observer_distortion, rate_bpp
from .model import OdicModel, lmbda_for
from .observers import Observer, ObserverUnavailable, create_observer
from .options import check_refine

#: Adam's step on the gained latents (whose quantisation step is 1), annealed along a cosine from
#: the first value to the second over the steps. The human schedule had the lowest loss on
#: training photos; for the machine the benchmark preferred a constant step, which kept more
#: top-1 than the lower-loss annealed one (measurements: docs/experiments.md, "Encoder refinement").
#: A mixed observer interpolates the two geometrically.
HUMAN_LR = (0.005, 0.0005)
MACHINE_LR = (0.005, 0.005)
#: Largest shift (pixels) of the random views the machine term is scored on at odd steps; 0 = off.
#: Views kept more of the unseen classifiers' answers (Lite1, Lite2) at little cost to Lite0 and
#: about 15% more encoding time; larger shifts and views at every step did worse
#: (docs/experiments.md, "Views on alternate steps").
DEFAULT_SHIFT = 8
#: Names how views are used (``shift`` > 0), for benchmark caches of streams made with views.
VIEWS_METHOD = "odd steps on a random view; whole-image steps scored, the best kept"
#: Names the search for benchmark caches: a changed schedule gives other streams, so new rows.
#: (The view shift is recorded on its own, resolved: the default and an explicit 8 share rows.)
REFINE_METHOD = f"cosine {HUMAN_LR} (human) / {MACHINE_LR} (machine)"
#: The same for the human observer alone, whose streams depend on nothing else: a change to the
#: machine search leaves cached human rows valid.
HUMAN_REFINE_METHOD = f"cosine {HUMAN_LR} (human)"
#: MS-SSIM's four downsamplings need a side above 32 pixels (with its smallest, 3 px, window).
MIN_MSSSIM_SIDE = 32
#: The MSE weight of the human distortion, as in training (docs/training.md).
MSE_WEIGHT = 10.0


class Refinement(NamedTuple):
    """Encoder refinement settings, validated: steps, the classifier of a machine share, view shift."""

    steps: int = 0
    observer: Observer | None = None
    shift: int = DEFAULT_SHIFT


def refinement_for(steps, classifier: str | nn.Module, mix: float, shift: int | None, device: torch.device,
                   loaded: dict[str | int, Observer]) -> Refinement:
    """Checked settings for :func:`refine_latents`, the classifier loaded once into ``loaded``.

    ``classifier`` is an observer name (registered, an installed entry point or a
    ``package.module:factory`` path) or a module, kept in ``loaded`` under its name or its id()
    (the observer holds the module, so the id stays its own). A human-only mix (``mix`` 0) needs
    no classifier, so none is loaded or checked.
    """
    shift = DEFAULT_SHIFT if shift is None else shift
    check_refine(steps, shift)
    if steps == 0 or mix == 0:
        return Refinement(steps)
    key = classifier if isinstance(classifier, str) else id(classifier)
    if key not in loaded:
        try:
            loaded[key] = create_observer(classifier, device)
        except KeyError as exc:  # create_observer's message names the known observers
            raise ValueError(f"refine classifier: {exc.args[0]}") from None
        except ObserverUnavailable as exc:
            raise ValueError(f"refine classifier {classifier!r} is unavailable: {exc}") from None
    return Refinement(steps, loaded[key], shift)


def refine_latents(model: OdicModel, x: Tensor, quality_code: int, alpha_code: int, steps: int,
                   observer: Observer | None = None, valid: tuple[int, int] | None = None,
                   lr: float | None = None, final_lr: float | None = None,
                   shift: int = DEFAULT_SHIFT) -> tuple[Tensor, Tensor]:
    """Latents ``(y_s, z_s)`` for a padded batch ``x`` after ``steps`` steps of refinement.

    ``valid`` is the (height, width) of the real image in the top-left of ``x``: the padding is
    not scored. ``observer`` is needed when ``alpha_code`` gives a machine share. The step size
    falls along a cosine from ``lr`` to ``final_lr`` (None: :func:`step_sizes` for this observer;
    ``final_lr=lr`` keeps it constant). ``shift`` > 0 shows the classifier, at every odd step,
    the original and the reconstruction cropped by the same random offset of up to ``shift``
    pixels and mirrored at random (a fixed seed: the same image gives the same stream), so the
    latents keep what classifiers see rather than what this one reacts to; the even steps and
    the last, scored on the whole image, are the ones that compete to be kept.
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
    with torch.no_grad():
        cond = model.embed(q, a)
        lmbda = lmbda_for(q, model.config)
        reference = observer(target, with_features=True) if machine else None
    views = _Views(target, shift, observer, reference) if machine and shift > 0 else None
    start, end = step_sizes(float(a.mean()))
    lr = start if lr is None else lr
    end = end if final_lr is None else final_lr
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
                x_hat, likelihoods = model.decode_rounded(y, z, q, a, cond)
                x_hat = x_hat[..., :h, :w]
                bpp = rate_bpp(likelihoods, h * w)
                scored = views is None or step % 2 == 0 or step == steps  # views are not compared
                if scored:
                    d = observer_distortion(target, x_hat, a, observer, mse_weight=MSE_WEIGHT,
                                            reference=reference)["d_alpha"]
                else:
                    d = views.distortion(target, x_hat, a)
                loss = (lmbda * d + bpp).sum()
                value = float(loss.detach())
                if scored and value < best_loss:  # non-finite values never win
                    best_loss, best = value, (y.detach().clone(), z.detach().clone())
                if step == steps or not torch.isfinite(loss):
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.param_groups[0]["lr"] = end + (lr - end) * 0.5 * (1 + math.cos(math.pi * step / steps))
                opt.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return best


def step_sizes(alpha: float) -> tuple[float, float]:
    """(first, last) step size for an observer ``alpha`` in [0, 1]: the measured human and machine
    schedules at the ends, geometric in between."""
    (h0, h1), (m0, m1) = HUMAN_LR, MACHINE_LR
    return h0 ** (1 - alpha) * m0 ** alpha, h1 ** (1 - alpha) * m1 ** alpha


class _Views:
    """Random shifted, mirrored views for the machine term, the same for original and reconstruction.

    They score the odd steps; the whole-image steps between them (scored by the caller) are the
    ones that compete for the kept latents, since losses of different views are not comparable.
    The classifier's reference for each view is computed once per view, without gradient; on an
    image too small to shift, the whole image's (``whole``) stands in.
    """

    def __init__(self, target: Tensor, shift: int, observer: Observer, whole: tuple[Tensor, dict[str, Tensor]]):
        h, w = target.shape[-2:]
        self.shift = min(shift, max(0, min(h, w) - MIN_MSSSIM_SIDE - 1))
        self.observer = observer
        self.whole = whole
        self.generator = torch.Generator().manual_seed(0)

    def distortion(self, target: Tensor, x_hat: Tensor, a: Tensor) -> Tensor:
        d_h = observer_distortion(target, x_hat, torch.zeros_like(a), None, mse_weight=MSE_WEIGHT)["d_human"]
        original, decoded, reference = target, x_hat, self.whole
        if self.shift:
            s, (h, w) = self.shift, target.shape[-2:]
            dy, dx = (int(v) for v in torch.randint(0, s + 1, (2,), generator=self.generator))
            original, decoded = (t[..., dy:h - s + dy, dx:w - s + dx] for t in (target, x_hat))
            if torch.rand((), generator=self.generator) < 0.5:
                original, decoded = original.flip(-1), decoded.flip(-1)
            with torch.no_grad():
                reference = self.observer(original, with_features=True)
        d_m = observer_distortion(original, decoded, a, self.observer, reference=reference)["d_machine"]
        return (1 - a) * d_h + a * d_m
