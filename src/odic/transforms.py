"""torchvision-style transforms that pass images through a codec, for evaluating or training
classifiers on what a decoder would actually deliver.

Example (the last step sees HEVC-compressed images at 0.25 bpp; swap in ``codec="odic"`` with
``observer="machine"`` to see what odic keeps for a classifier)::

    from torchvision import transforms as T
    import odic.transforms as OT

    pipeline = T.Compose([
        T.Resize(256), T.CenterCrop(256),
        OT.Compress(codec="hevc", bpp=0.25),          # or codec="odic", observer="machine"
        T.CenterCrop(224), T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])

:class:`Compress` takes a PIL image, a numpy array (HxW or HxWxC, uint8) or a tensor ((C, H, W) or
(B, C, H, W), float in [0, 1] or uint8) and returns the same type, shape, dtype and device.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

T = TypeVar("T", Image.Image, np.ndarray, torch.Tensor)

#: Default rate when neither ``bpp`` nor ``quality`` is given.
DEFAULT_BPP = 0.25


def encode_at_bpp(codec: Any, image: Image.Image, bpp: float, *, steps: int = 14,
                  tolerance: float = 0.02) -> tuple[bytes, float]:
    """Search a classical codec's setting for the stream whose bpp is closest (in log) to ``bpp``.

    Bisection over ``codec.quality_range`` in the direction given by ``codec.rate_increases``;
    returns ``(data, setting)``. Why a search: classical quality scales do not map to a rate.
    """
    if not bpp > 0:
        raise ValueError(f"bpp must be positive, got {bpp}")
    pixels = image.width * image.height
    lo, hi = (float(v) for v in codec.quality_range)
    tried: dict[float, bytes] = {}
    best: tuple[float, bytes, float] | None = None

    def attempt(setting: float) -> float:
        nonlocal best
        if setting not in tried:
            tried[setting] = codec.encode(image, setting)
        data = tried[setting]
        got = max(len(data), 1) * 8 / pixels
        score = abs(math.log(got / bpp))
        if best is None or score < best[0]:
            best = (score, data, setting)
        return got

    for _ in range(steps):
        mid = (lo + hi) / 2
        got = attempt(mid)
        if best is not None and best[0] < tolerance:
            break
        if (got > bpp) == bool(getattr(codec, "rate_increases", True)):
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-3:
            break
    for end in codec.quality_range:  # the ends of the range, in case the target lies beyond them
        if best is not None and best[0] < tolerance:
            break
        attempt(float(end))
    assert best is not None
    return best[1], best[2]


class Compress(torch.nn.Module):
    """Compress and decompress an image with odic or a classical codec (a lossy round trip).

    ``codec``: ``"odic"`` or any name/spec of :func:`odic.codecs.create_codec` (``"jpeg"``,
    ``"webp"``, ``"hevc"``, ``"hevc:chroma=420"``, ``"avif"``, ``"jxl"``, ``"jpeg2000"``, ...).
    Give ``bpp`` (bits per pixel of the whole file; the codec's setting is searched per image) or
    ``quality`` (odic: 0..100; classical: the codec's own setting, e.g. JPEG quality 1..100).
    Default: ``bpp=0.25``. ``observer`` (``"human"``, ``"machine"`` or a float in [0, 1]) applies to
    odic only. ``model``/``device`` choose the odic model; ``codec_options`` go to the codec.
    ``last_bpp`` holds the rate of the most recent image (in this process).
    """

    def __init__(self, codec: str = "odic", bpp: float | None = None, quality: float | None = None,
                 observer: float | str = "machine", model: str | None = None, device: str = "cpu",
                 **codec_options: Any) -> None:
        super().__init__()
        if bpp is not None and quality is not None:
            raise ValueError("give bpp or quality, not both")
        if bpp is None and quality is None:
            bpp = DEFAULT_BPP
        if bpp is not None and not bpp > 0:
            raise ValueError(f"bpp must be positive, got {bpp}")
        self.codec_name = str(codec)
        self.bpp = None if bpp is None else float(bpp)
        self.quality = None if quality is None else float(quality)
        self.model = model
        self.device = device
        self.codec_options = dict(codec_options)
        self.is_odic = self.codec_name.split(":", 1)[0] == "odic"
        if self.is_odic:
            from .options import parse_observer

            self.observer = parse_observer(observer)
            if self.codec_options or ":" in self.codec_name:
                raise ValueError("codec='odic' takes observer, model and device, not codec options")
        else:
            self.observer = None
        self.last_bpp: float | None = None
        self._impl: Any = None
        self._get_impl()  # fail early on unknown codecs or missing libraries

    # Codecs hold models or library handles: build them lazily in each DataLoader worker.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_impl"] = None
        return state

    def _get_impl(self) -> Any:
        if self._impl is None:
            if self.is_odic:
                from .api import load

                self._impl = load(self.model, device=self.device)
            else:
                from .codecs import codec_from_spec, create_codec

                if self.codec_options:
                    self._impl = create_codec(self.codec_name, **self.codec_options)
                else:
                    self._impl = codec_from_spec(self.codec_name)
        return self._impl

    def extra_repr(self) -> str:
        rate = f"bpp={self.bpp:g}" if self.bpp is not None else f"quality={self.quality:g}"
        obs = f", observer={self.observer:g}" if self.is_odic else ""
        return f"codec={self.codec_name!r}, {rate}{obs}"

    # -------------------------------------------------------------- one RGB/L image
    def _roundtrip_rgb(self, image: Image.Image) -> Image.Image:
        """RGB or L image -> the decoded image of the same mode; sets ``last_bpp``."""
        impl = self._get_impl()
        if self.is_odic:
            data = impl.compress(image, self.quality, self.observer, bpp=self.bpp)
            out = impl.decompress(data)
        else:
            rgb = image.convert("RGB")
            if self.bpp is not None:
                data, _ = encode_at_bpp(impl, rgb, self.bpp)
            else:
                data = impl.encode(rgb, self.quality)
            out = impl.decode(data)
        self.last_bpp = len(data) * 8 / (image.width * image.height)
        return out if out.mode == image.mode else out.convert(image.mode)

    def _roundtrip_pil(self, image: Image.Image) -> Image.Image:
        """Any PIL image: alpha is kept as it was (codecs compare colour), the mode is restored."""
        mode = image.mode
        if mode in ("RGB", "L"):
            return self._roundtrip_rgb(image)
        if mode in ("RGBA", "LA"):
            base = self._roundtrip_rgb(image.convert(mode[:-1]))
            base.putalpha(image.getchannel("A"))
            return base
        return self._roundtrip_rgb(image.convert("RGB"))

    # -------------------------------------------------------------- entry point
    def forward(self, image: T) -> T:
        """Round-trip ``image`` through the codec; same type, shape and dtype as given."""
        if isinstance(image, Image.Image):
            return self._roundtrip_pil(image)
        if isinstance(image, torch.Tensor):
            return self._tensor(image)
        if isinstance(image, np.ndarray):
            return self._ndarray(image)
        raise TypeError(f"Compress takes a PIL image, numpy array or tensor, not {type(image).__name__}")

    def _ndarray(self, arr: np.ndarray) -> np.ndarray:
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ValueError(f"expected a uint8 array HxW or HxWx{{1,3,4}}, got {arr.dtype} {arr.shape}")
        squeeze = arr.ndim == 3 and arr.shape[2] == 1
        img = Image.fromarray(arr[..., 0] if squeeze else arr)
        out = np.array(self._roundtrip_pil(img))  # writable copy: torch.from_numpy warns otherwise
        return out[..., None] if squeeze else out

    def _tensor(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return torch.stack([self._tensor(x[i]) for i in range(x.shape[0])])
        if x.ndim != 3 or x.shape[0] not in (1, 3, 4):
            raise ValueError(f"expected a tensor (C, H, W) or (B, C, H, W) with C in 1, 3, 4, got {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            u8 = x
        elif x.is_floating_point():
            u8 = torch.floor(x.detach().float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        else:
            raise ValueError(f"expected a float tensor in [0, 1] or uint8, got {x.dtype}")
        arr = u8.permute(1, 2, 0).cpu().numpy()
        out = torch.from_numpy(np.ascontiguousarray(self._ndarray(arr))).permute(2, 0, 1)
        if x.dtype == torch.uint8:
            return out.to(x.device)
        return out.to(device=x.device, dtype=x.dtype) / 255
