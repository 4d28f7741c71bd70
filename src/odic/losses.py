"""Distortions for each observer and their mix ``D_alpha = (1 - alpha) D_human + alpha D_machine``.

* Human: ``1 - MS-SSIM`` (pytorch-msssim) plus a weighted MSE (training uses 10: MS-SSIM alone
  hardly penalises lost colour).
* Machine: feature reconstruction on a frozen classifier (Weber et al. 2020 used VGG-16
  relu1_1 and relu5_1): for each chosen layer the squared feature difference divided by the mean
  squared feature of the original (so layers with large activations do not dominate), averaged
  over layers; plus an optional KL divergence between the classifier's predictions. An observer
  without classes matches its layers (or, with none named, its output) alike; an embedding adds
  ``1 - cosine similarity`` of its vectors instead of the KL (``Observer.kind``).
* Scale: the machine term is multiplied by ``machine_scale`` so that both terms are comparable.
  It was calibrated on training crops degraded by blur and noise, where ``1 - MS-SSIM`` and the
  normalised feature loss of EfficientNet-Lite0 were measured side by side; their median ratio
  is the default (docs/training.md, "Loss"; the script that measured it, scripts/calibrate_machine_scale.py,
  is in the git history at 31bdd21).

Every function returns one value per image (shape (B,)) so per-sample (quality, alpha) weights work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from torch import Tensor

from .observers import Observer, observer_kind

DEFAULT_MACHINE_SCALE = 0.12
#: Weight of an embedding's ``1 - cosine similarity``: on the scale of its normalised squared
#: difference, which is ``2 (1 - cos)`` for vectors of equal length.
COSINE_WEIGHT = 1.0


def msssim_window(height: int, width: int) -> int:
    """Largest odd Gaussian window (<= 11) that five MS-SSIM scales allow for this size."""
    side = min(height, width)
    win = 11
    while win > 3 and side <= (win - 1) * 16:
        win -= 2
    return win


def human_distortion(x: Tensor, x_hat: Tensor, mse_weight: float | Tensor = 0.0) -> Tensor:
    """Per-image ``1 - MS-SSIM`` (+ ``mse_weight * MSE``, the weight one number or one per image);
    inputs in [0, 1]."""
    win = msssim_window(*x.shape[-2:])
    d = 1 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0, size_average=False, win_size=win)
    if isinstance(mse_weight, Tensor) or mse_weight:
        d = d + mse_weight * F.mse_loss(x_hat, x, reduction="none").mean(dim=(1, 2, 3))
    return d


def machine_distortion(
    observer: Observer,
    x: Tensor,
    x_hat: Tensor,
    layers: list[str] | None = None,
    kl_weight: float = 0.1,
    reference: tuple[Tensor, dict[str, Tensor]] | None = None,
) -> Tensor:
    """Per-image distance between what a frozen ``observer`` makes of ``x_hat`` and of ``x``.

    The normalised feature loss of ``layers`` (default: the observer's feature layers; with none,
    its output), plus for a classifier ``kl_weight`` times the KL divergence of its predictions
    and for an embedding ``COSINE_WEIGHT`` times ``1 - cosine similarity``.
    """
    layers = layers or observer.feature_layer_names
    if reference is None:
        with torch.no_grad():
            reference = observer(x, with_features=True)
    ref_out, ref_feats = reference
    out, feats = observer(x_hat, with_features=True)
    pairs = [(feats[name], ref_feats[name]) for name in layers] if layers else [(out, ref_out)]
    terms = []
    for feat, ref in pairs:
        ref = ref.detach()
        dims = tuple(range(1, ref.ndim))
        diff = (feat - ref).pow(2).mean(dim=dims)
        terms.append(diff / (ref.pow(2).mean(dim=dims) + 1e-6))
    d = torch.stack(terms, dim=0).mean(dim=0)
    kind = observer_kind(observer)
    if kind == "classifier" and kl_weight:
        kl = F.kl_div(
            F.log_softmax(out, dim=1), F.log_softmax(ref_out.detach(), dim=1),
            reduction="none", log_target=True,
        ).sum(dim=1)
        d = d + kl_weight * kl
    elif kind == "embedding":
        d = d + COSINE_WEIGHT * (1 - F.cosine_similarity(out, ref_out.detach(), dim=1))
    return d


def observer_distortion(
    x: Tensor,
    x_hat: Tensor,
    alpha: Tensor,
    observer: Observer | None,
    machine_scale: float = DEFAULT_MACHINE_SCALE,
    mse_weight: float | Tensor = 0.0,
    layers: list[str] | None = None,
    kl_weight: float = 0.1,
    reference: tuple[Tensor, dict[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """``D_alpha`` per image; the classifier runs only on the images whose alpha is above 0.

    ``reference`` is the classifier's ``(logits, features)`` of all of ``x``, for callers that
    score many reconstructions of the same originals (encoder refinement) and compute it once.
    """
    d_h = human_distortion(x, x_hat, mse_weight)
    d_m = torch.zeros_like(d_h)
    machine_rows = (alpha > 0).nonzero().flatten() if observer is not None else []
    if len(machine_rows):  # only the images that have a machine share pay for the classifier
        ref = None
        if reference is not None:
            ref = (reference[0][machine_rows], {k: v[machine_rows] for k, v in reference[1].items()})
        part = machine_scale * machine_distortion(observer, x[machine_rows], x_hat[machine_rows], layers,
                                                  kl_weight, ref)
        d_m = d_m.index_put((machine_rows,), part)
    return {"d_alpha": (1 - alpha) * d_h + alpha * d_m, "d_human": d_h, "d_machine": d_m}


def rate_bpp(likelihoods: dict[str, Tensor], num_pixels: int) -> Tensor:
    """Per-image estimated rate in bits per pixel from the entropy models' likelihoods."""
    total = sum(torch.log2(lik).flatten(1).sum(dim=1) for lik in likelihoods.values())
    return -total / num_pixels
