"""The observer loss family: zero at identity, growing with degradation, no classifier at alpha 0."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from odic.losses import human_distortion, machine_distortion, observer_distortion, rate_bpp
from odic.observers import create_observer, get_spec, list_observers

from .conftest import smooth_image


@pytest.fixture(scope="module")
def images():
    return torch.stack([torch.from_numpy(smooth_image(128, 128, s)).permute(2, 0, 1) for s in range(2)]).float() / 255


@pytest.fixture(scope="module")
def lite0():
    torch.set_num_threads(2)
    return create_observer("efficientnet_lite0")


def _degrade(x, level):
    """Move ``level`` thirds of the way from ``x`` to a heavily blurred and noisy version of it."""
    g = torch.Generator().manual_seed(0)
    far = (TF.gaussian_blur(x, 15, 4.0) + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    t = level / 3
    return (1 - t) * x + t * far


def test_human_zero_at_identity_and_monotone(images):
    d = [human_distortion(images, _degrade(images, lv)).mean().item() for lv in (0, 1, 2, 3)]
    assert d[0] == pytest.approx(0, abs=1e-5)
    assert d[0] < d[1] < d[2] < d[3]


def test_human_mse_weight_per_image_weighs_each_image_by_its_own(images):
    """A weight per image (the quality-dependent MSE weight) scores each image as its own scalar would."""
    degraded = _degrade(images, 1)
    per_image = human_distortion(images, degraded, torch.tensor([0.0, 50.0]))
    alone = [human_distortion(images[i:i + 1], degraded[i:i + 1], w).item() for i, w in enumerate((0.0, 50.0))]
    assert per_image.tolist() == pytest.approx(alone, rel=1e-5)
    assert alone[1] > human_distortion(images[1:], degraded[1:]).item()  # the MSE term was added


def test_machine_zero_at_identity_and_monotone(images, lite0):
    with torch.no_grad():
        d = [machine_distortion(lite0, images, _degrade(images, lv)).mean().item() for lv in (0, 1, 2, 3)]
    assert d[0] == pytest.approx(0, abs=1e-5)
    assert d[0] < d[1] < d[2] < d[3]


def test_mixed_interpolates(images, lite0):
    x_hat = _degrade(images, 2)
    with torch.no_grad():
        parts = [observer_distortion(images, x_hat, torch.full((2,), a), lite0) for a in (0.0, 0.5, 1.0)]
    h, m = parts[0]["d_human"], parts[2]["d_machine"]
    assert (h > 0).all() and (m > 0).all()  # the reconstruction differs: both observers see it
    assert torch.allclose(parts[0]["d_alpha"], h)
    assert torch.allclose(parts[2]["d_alpha"], m)
    assert torch.allclose(parts[1]["d_alpha"], 0.5 * h + 0.5 * m, atol=1e-6)


class _Forbidden(torch.nn.Module):
    feature_layer_names = ["early"]

    def forward(self, *args, **kwargs):
        raise AssertionError("the classifier must not run when alpha is 0")


def test_alpha_zero_never_runs_the_classifier(images):
    x_hat = _degrade(images, 1).requires_grad_(True)
    d = observer_distortion(images, x_hat, torch.zeros(2), _Forbidden())
    d["d_alpha"].sum().backward()
    assert torch.count_nonzero(d["d_machine"]) == 0


def test_classifier_stays_frozen(images, lite0):
    x_hat = _degrade(images, 1).requires_grad_(True)
    machine_distortion(lite0, images, x_hat).sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in lite0.parameters())
    assert not lite0.net.training


def test_rate_bpp():
    lik = {"y": torch.full((2, 4, 2, 2), 0.5), "z": torch.ones(2, 1, 1, 1)}
    assert torch.allclose(rate_bpp(lik, 16), torch.full((2,), 1.0))


def test_registry():
    names = list_observers()
    for expected in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50", "vgg16",
                     "inception_v3", "mobilenet_v2", "densenet121", "inception_resnet_v2", "xception"):
        assert expected in names
    assert get_spec("efficientnet_lite2").crop_size == 304
    assert get_spec("inception_v3").crop_size == 336
    with pytest.raises(KeyError, match="unknown observer"):
        get_spec("alexnet9000")


def test_unavailable_observer_says_how_to_get_it(monkeypatch, tmp_path):
    from odic.observers import ObserverUnavailable

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ObserverUnavailable, match="weights are not installed"):
        create_observer("resnet50")


@pytest.mark.parametrize("name,minimum", [("efficientnet_lite1", 0.7), ("efficientnet_lite2", 0.7)])
def test_lite_classifiers_classify(shared_data, name, minimum):
    """Sanity check of the rebuilt architectures on 20 labelled images (reference protocol)."""
    import csv

    import numpy as np
    from PIL import Image

    obs = create_observer(name)
    rows = list(csv.DictReader(open(shared_data / "imagenet-sample" / "labels.csv")))[:20]
    size, crop = obs.spec.input_size, obs.spec.crop_size
    batch = []
    for r in rows:
        im = Image.open(shared_data / "imagenet-sample" / r["file"]).convert("RGB").resize((crop, crop), Image.BICUBIC)
        o = (crop - size) // 2
        batch.append(torch.from_numpy(np.asarray(im.crop((o, o, o + size, o + size))).copy()).permute(2, 0, 1))
    with torch.no_grad():
        pred = obs(torch.stack(batch).float() / 255).argmax(1)
    acc = float(np.mean([int(p) == int(r["label"]) for p, r in zip(pred, rows, strict=True)]))
    assert acc >= minimum


class _CountingObserver(torch.nn.Module):
    """Wraps a classifier and records the batch sizes it was run on."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.batches = inner, []
        self.feature_layer_names = inner.feature_layer_names

    def forward(self, x, with_features=False):
        self.batches.append(x.shape[0])
        return self.inner(x, with_features=with_features)


def test_classifier_runs_only_on_machine_rows(images, lite0):
    x_hat = _degrade(images, 1)
    counting = _CountingObserver(lite0)
    mixed = observer_distortion(images, x_hat, torch.tensor([0.0, 0.6]), counting)
    assert counting.batches == [1, 1]  # reference and decoded pass, the alpha = 0 image left out
    full = observer_distortion(images, x_hat, torch.tensor([0.3, 0.6]), lite0)
    assert mixed["d_machine"][0] == 0
    assert mixed["d_machine"][1] == pytest.approx(float(full["d_machine"][1]), rel=1e-4)
    assert mixed["d_alpha"][1] == pytest.approx(float(full["d_alpha"][1]), rel=1e-4)
