"""Bring your own observer: a user's model by every route, in refinement, the bench and training.

The user's package is written into a temporary folder (``odic_user_models``), so the routes that
import (``package.module:factory``, entry points) import real code, as they would in a user's setup.
"""

from __future__ import annotations

import csv
import importlib
import re
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import odic
from odic import observers
from odic.cli import main
from odic.losses import COSINE_WEIGHT, machine_distortion
from odic.observers import ENTRY_POINT_GROUP, create_observer, list_observers
from odic.refine import refinement_for

from .conftest import smooth_image

USER_PACKAGE = "odic_user_models"
USER_SOURCE = '''
"""A user's models: a tiny seeded classifier, its embedding twin, and some mistakes."""
import torch
from torch import nn

from odic.observers import observer_spec

CALLS = []  # every batch the models saw: the tests check that refinement asked them


class TinyClassifier(nn.Module):
    """Edge detectors (zero-mean 3x3 kernels), two strided convolutions, a linear head."""

    def __init__(self, outputs=10):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1),
                                          nn.ReLU(), nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
            self.head = nn.Linear(32, outputs)
        with torch.no_grad():
            edges = self.features[0]
            edges.weight -= edges.weight.mean(dim=(1, 2, 3), keepdim=True)
            edges.bias.zero_()

    def forward(self, x):
        CALLS.append(tuple(x.shape))
        return self.head(self.features(x).mean(dim=(2, 3)))


class FeatureMap(TinyClassifier):
    def forward(self, x):
        return self.features(x)


class Tokens(TinyClassifier):
    def forward(self, x):
        return super().forward(x)[:, None, :]  # (B, 1, 10): no logits, but features


class Pooled(TinyClassifier):
    def forward(self, x):
        return super().forward(x).mean(dim=0)  # (10,): one answer for the whole batch


def make_classifier():
    return TinyClassifier()


def make_embedding():
    return TinyClassifier(outputs=8)


def make_feature_map():
    return FeatureMap()


def make_tokens():
    return Tokens()


def make_pooled():
    return Pooled()


def not_a_model():
    return 3


def broken():
    raise RuntimeError("weights not found\\nsecond line")


edges = observer_spec("edges", make_classifier, feature_layers=["features.1"], input_size=48)
vectors = observer_spec("vectors", make_embedding, kind="embedding")
'''


def _tensor(img) -> torch.Tensor:
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def _one_line_error(err: str) -> bool:
    lines = err.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("odic: error:") and "Traceback" not in err


@pytest.fixture(autouse=True)
def one_thread():
    """Images of 64 px gain nothing from threads, and on a busy machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """The user's package, importable; registrations made by a test stay in that test."""
    (tmp_path / f"{USER_PACKAGE}.py").write_text(textwrap.dedent(USER_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(observers, "_REGISTRY", dict(observers._REGISTRY))
    sys.modules.pop(USER_PACKAGE, None)
    module = importlib.import_module(USER_PACKAGE)
    yield module
    sys.modules.pop(USER_PACKAGE, None)


@pytest.fixture
def image() -> np.ndarray:
    return smooth_image(64, 64, seed=1)


def _decodes_with_a_plain_codec(data: bytes, image: np.ndarray) -> None:
    assert odic.Codec.info(data)["observer"] == 1.0
    assert odic.load().decompress(data).size == (image.shape[1], image.shape[0])


# ----------------------------------------------------------------------------- the four routes


def test_a_module_passed_directly_refines_and_is_left_unchanged(codec, user_models, image):
    model = user_models.make_classifier()
    data = codec.compress(image, quality=40, observer="machine", refine=3, refine_classifier=model)
    _decodes_with_a_plain_codec(data, image)
    assert user_models.CALLS, "refinement never asked the user's model"
    assert model.training and all(p.requires_grad for p in model.parameters())  # odic used a copy


def test_a_registered_name_refines(codec, user_models, image):
    spec = odic.register_observer("tiny-by-name", user_models.make_classifier, feature_layers=["features.1"])
    assert "tiny-by-name" in list_observers() and spec.input_size == observers.DEFAULT_INPUT_SIZE
    data = codec.compress(image, quality=40, observer="machine", refine=3, refine_classifier="tiny-by-name")
    _decodes_with_a_plain_codec(data, image)
    assert create_observer("tiny-by-name").feature_layer_names == ["features.1"]


def test_an_installed_packages_entry_point_is_found_by_name(codec, user_models, image, monkeypatch):
    shipped = [metadata.EntryPoint("tiny-shipped", f"{USER_PACKAGE}:edges", ENTRY_POINT_GROUP),
               metadata.EntryPoint("tiny-factory", f"{USER_PACKAGE}:make_classifier", ENTRY_POINT_GROUP)]
    everything = metadata.entry_points

    def entry_points(**selection):
        return shipped if selection.get("group") == ENTRY_POINT_GROUP else everything(**selection)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    assert {"tiny-shipped", "tiny-factory"} <= set(list_observers())
    assert "tiny-shipped" not in observers._REGISTRY  # loaded only when asked for
    data = codec.compress(image, quality=40, observer="machine", refine=3, refine_classifier="tiny-shipped")
    _decodes_with_a_plain_codec(data, image)
    spec = observers.get_spec("tiny-shipped")  # the package's options came along, under the entry point's name
    assert (spec.name, spec.input_size, spec.crop_size) == ("tiny-shipped", 48, 80)
    assert create_observer("tiny-factory").kind == "classifier"


def test_a_package_module_factory_path_refines_from_the_api_and_the_cli(codec, user_models, image, tmp_path,
                                                                       monkeypatch):
    path = f"{USER_PACKAGE}:make_classifier"
    data = codec.compress(image, quality=40, observer="machine", refine=3, refine_classifier=path)
    _decodes_with_a_plain_codec(data, image)
    # The command line finds a module in the current folder, as `python -m` would.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    sys.modules.pop(USER_PACKAGE, None)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(image).save(tmp_path / "in.png")
    assert main(["compress", "in.png", "-o", "in.odic", "--quality", "40", "--observer", "machine", "--refine", "3",
                 "--refine-classifier", path]) == 0
    assert Path("in.odic").read_bytes() == data
    assert main(["decompress", "in.odic", "-o", "back.png"]) == 0
    assert Image.open("back.png").size == (64, 64)


def test_the_same_module_is_loaded_once_per_codec(user_models):
    model, loaded = user_models.make_classifier(), {}
    first = refinement_for(3, model, 1.0, None, torch.device("cpu"), loaded)
    again = refinement_for(3, model, 1.0, None, torch.device("cpu"), loaded)
    assert first.observer is again.observer and list(loaded) == [id(model)]
    other = refinement_for(3, user_models.make_classifier(), 1.0, None, torch.device("cpu"), loaded)
    assert other.observer is not first.observer and len(loaded) == 2


# ----------------------------------------------------------------------------- what refinement buys


def test_refinement_for_the_users_model_gives_smaller_streams_that_it_sees_closer(codec, user_models):
    """Against the fast encoder at the same quality, on four textured 64 px images, for the user's model.

    Measured (quality 60, 40 steps, no views): 1280 bytes instead of 1368 in all, and its
    normalised edge-feature distance (+ KL) 1.109 instead of 1.142; the test asks for both.
    Refined for EfficientNet-Lite0 instead, the same images measure 1352 bytes and 1.151.
    """
    odic.register_observer("tiny-edges", user_models.make_classifier, feature_layers=["features.1"])
    observer = create_observer("tiny-edges")
    sizes, distances = np.zeros(2), np.zeros(2)
    for seed in range(4):
        noise = np.random.default_rng(seed).normal(0, 20, (64, 64, 3))
        img = np.clip(smooth_image(64, 64, seed=seed) + noise, 0, 255).astype(np.uint8)
        fast = codec.compress(img, quality=60, observer="machine")
        refined = codec.compress(img, quality=60, observer="machine", refine=40, refine_classifier="tiny-edges",
                                 refine_shift=0)
        x = _tensor(img)
        with torch.no_grad():
            for i, data in enumerate((fast, refined)):
                sizes[i] += len(data)
                distances[i] += float(machine_distortion(observer, x, _tensor(codec.decompress(data))))
    assert sizes[1] < sizes[0] and distances[1] < distances[0], (sizes, distances)


# ----------------------------------------------------------------------------- kinds and the loss


def test_the_kind_follows_the_output_unless_given(user_models):
    assert create_observer(user_models.make_classifier()).kind == "classifier"  # (B, K)
    assert create_observer(user_models.make_feature_map()).kind == "features"  # (B, C, H, W)
    odic.register_observer("tiny-vectors", user_models.make_embedding, kind="embedding")
    assert create_observer("tiny-vectors").kind == "embedding"
    with pytest.raises(ValueError, match="kind must be one of classifier, embedding, features"):
        odic.register_observer("tiny-bad-kind", user_models.make_embedding, kind="detector")


def test_what_the_machine_loss_matches_for_each_kind(user_models):
    """One network, three kinds: the output is matched alike, the kind adds KL, cosine or nothing."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 8))
    for kind in ("classifier", "embedding", "features"):
        odic.register_observer(f"tiny-{kind}", net, kind=kind)
    x = _tensor(smooth_image(48, 48, seed=2))
    x_hat = _tensor(np.asarray(Image.fromarray(smooth_image(48, 48, seed=3)).rotate(90)))  # another image
    d = {kind: machine_distortion(create_observer(f"tiny-{kind}"), x, x_hat, kl_weight=0.1)
         for kind in ("classifier", "embedding", "features")}
    with torch.no_grad():
        ref, out = net(x), net(x_hat)
    cosine = 1 - F.cosine_similarity(out, ref, dim=1)
    kl = F.kl_div(F.log_softmax(out, 1), F.log_softmax(ref, 1), reduction="none", log_target=True).sum(1)
    assert float(cosine) > 1e-3 and float(kl) > 1e-3, (cosine, kl)  # each term is large enough to be seen
    assert torch.allclose(d["embedding"] - d["features"], COSINE_WEIGHT * cosine, rtol=1e-4, atol=1e-6)
    assert torch.allclose(d["classifier"] - d["features"], 0.1 * kl, rtol=1e-4, atol=1e-6)
    assert torch.allclose(d["features"], (out - ref).pow(2).mean(1) / (ref.pow(2).mean(1) + 1e-6), rtol=1e-4)


def test_an_embedding_model_refines(codec, user_models, image):
    odic.register_observer("tiny-embedding", user_models.make_embedding, kind="embedding",
                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    data = codec.compress(image, quality=40, observer="machine", refine=3, refine_classifier="tiny-embedding")
    _decodes_with_a_plain_codec(data, image)


# ----------------------------------------------------------------------------- mistakes: one line each


@pytest.mark.parametrize(("path", "message"), [
    ("no_such_package.models:make", "import failed: ModuleNotFoundError"),
    (f"{USER_PACKAGE}:missing", "import failed: AttributeError"),
    (f"{USER_PACKAGE}:not_a_model", "the factory returned a int, not a torch.nn.Module"),
    (f"{USER_PACKAGE}:broken", "its factory failed: RuntimeError: weights not found"),
    (f"{USER_PACKAGE}:make_pooled", "its output must be a tensor (B, ...) with one entry per image of a batch of 1, "
                                    "got shape (10,)"),
])
def test_a_wrong_factory_is_a_one_line_error(codec, user_models, image, tmp_path, capsys, path, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        codec.compress(image, observer="machine", refine=2, refine_classifier=path)
    Image.fromarray(image).save(tmp_path / "in.png")
    code = main(["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.odic"), "--observer", "machine",
                 "--refine", "2", "--refine-classifier", path])
    err = capsys.readouterr().err
    assert code == 2 and _one_line_error(err) and message in err, err
    assert not (tmp_path / "out.odic").exists()


def test_a_wrong_output_shape_for_the_kind_is_refused_when_loaded(user_models):
    odic.register_observer("tiny-3d", user_models.make_tokens, kind="classifier")
    with pytest.raises(ValueError, match=r"'tiny-3d' of kind 'classifier' must return a \(B, K\) tensor"):
        create_observer("tiny-3d")
    odic.register_observer("tiny-3d-features", user_models.make_tokens)  # the default kind for (B, 1, 10)
    assert create_observer("tiny-3d-features").kind == "features"
    odic.register_observer("tiny-no-layer", user_models.make_classifier, feature_layers=["features.9"])
    with pytest.raises(ValueError, match="no submodule 'features.9'"):
        create_observer("tiny-no-layer")


def test_a_name_registered_twice_is_refused_unless_overwritten(user_models):
    odic.register_observer("tiny-twice", user_models.make_classifier)
    with pytest.raises(ValueError, match="observer 'tiny-twice' is already registered; pass overwrite=True"):
        odic.register_observer("tiny-twice", user_models.make_embedding)
    with pytest.raises(ValueError, match="'efficientnet_lite0' is already registered"):
        odic.register_observer("efficientnet_lite0", user_models.make_classifier)
    odic.register_observer("tiny-twice", user_models.make_embedding, kind="embedding", overwrite=True)
    assert create_observer("tiny-twice").kind == "embedding"


# ----------------------------------------------------------------------------- bench and training


@pytest.fixture
def labelled(tmp_path) -> Path:
    folder = tmp_path / "labelled"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(90, 100, seed=i)).save(folder / f"p{i}.png")
    (folder / "labels.csv").write_text("file,label\np0.png,1\np1.png,3\n")
    return folder


def test_bench_scores_and_refines_for_the_users_model(user_models, labelled, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["bench", "--data", f"mine={labelled}", "--codecs",
                 f"odic:alpha=1:q=40:refine=2:refine_classifier={USER_PACKAGE}.make_classifier,jpeg:q=50",
                 "--classifiers", f"{USER_PACKAGE}:edges", "--out", str(out), "--no-plots", "-q"])
    assert code == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "results.csv")))
    odic_rows = [r for r in rows if r["codec"].startswith("odic")]
    assert len(odic_rows) == 2 and all(r[f"top1/{USER_PACKAGE}:edges"] != "" for r in odic_rows)
    assert {r["crop"] for r in rows} == {"80"}  # the user's input size 48 sets the protocol crop


def test_bench_refuses_a_model_without_classes_and_a_wrong_refine_classifier(user_models, labelled, tmp_path,
                                                                            capsys):
    common = ["bench", "--data", f"mine={labelled}", "--out", str(tmp_path / "out"), "--no-plots", "-q"]
    assert main([*common, "--codecs", "jpeg:q=50", "--classifiers", f"{USER_PACKAGE}:make_feature_map"]) == 2
    err = capsys.readouterr().err
    assert _one_line_error(err) and "is of kind 'features'" in err
    assert main([*common, "--codecs", f"odic:alpha=1:q=40:refine=2:refine_classifier={USER_PACKAGE}.broken"]) == 2
    err = capsys.readouterr().err
    assert "its factory failed: RuntimeError: weights not found" in err and "Traceback" not in err


def test_training_takes_the_users_model_as_its_observer(user_models, tmp_path, capsys):
    from odic.train import TrainConfig, train

    data = tmp_path / "train"
    data.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(72, 80, seed=i)).save(data / f"img{i}.png")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "bad"), "--steps", "2",
                 "--observer-classifier", f"{USER_PACKAGE}:not_a_model"]) == 2
    assert _one_line_error(capsys.readouterr().err)
    for name in ("make_classifier", "vectors"):
        run = train(TrainConfig(data=[str(data)], val_count=1, out=str(tmp_path / name), steps=2, crop=64, batch=2,
                                N=16, M=24, alpha=1.0, observer=f"{USER_PACKAGE}:{name}", val_every=0,
                                log_every=1, threads=1, progress=False, precision="fp32"))
        rows = list(csv.DictReader(open(run / "log.csv")))
        assert len(rows) == 2 and all(float(r["d_machine"]) > 0 for r in rows)
    assert user_models.CALLS  # the user's model, not the default classifier, scored the reconstructions


def test_training_wraps_the_observer_and_keeps_its_kind(user_models):
    from odic.train.precision import AutocastObserver, Precision

    wrapped = AutocastObserver(create_observer(f"{USER_PACKAGE}:vectors"), Precision("fp32", torch.device("cpu")))
    assert observers.observer_kind(wrapped) == "embedding"  # the loss adds the cosine, not a KL, in training too


# ----------------------------------------------------------------------------- device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_refinement_runs_on_the_codecs_device_with_the_users_model(user_models, image):
    model = user_models.make_classifier()
    gpu = odic.load(device="cuda")
    data = gpu.compress(image, quality=40, observer="machine", refine=3, refine_classifier=model)
    assert next(model.parameters()).device.type == "cpu"  # the user's module stays where it was
    loaded = [o for o in gpu._observers.values() if o.spec.name == "TinyClassifier"]
    assert loaded and next(loaded[0].parameters()).device.type == "cuda"
    _decodes_with_a_plain_codec(data, image)
