"""The reference classification protocol and the measurement of one encode/decode.

Classifier with input ``n`` px: resize the shorter side to ``c = ceil16(n) + 32`` (bilinear,
Pillow's antialiased filter), centre-crop ``c x c``, compress that crop, decode it, centre-crop
``n x n`` and classify. ``n = 224`` gives the familiar 256 -> 224; 240 -> 272, 260 -> 304,
299 -> 336. bpp counts the whole file over the pixels of the compressed crop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from odic.codecs import BenchCodec

from .datasets import Dataset

RESAMPLE = Image.BILINEAR


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size x size`` square (left/top rounded down, as torchvision does)."""
    w, h = image.size
    if w < size or h < size:
        raise ValueError(f"image {w}x{h} is smaller than the {size}px crop")
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def reference_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size``, then centre-crop a ``size x size`` square."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), RESAMPLE)
    return centre_crop(image, size)


def to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """RGB images -> float NCHW in [0, 1] (what the observers take)."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images]) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def classify_top5(observer: torch.nn.Module, images: Sequence[Image.Image], input_size: int,
                  batch: int = 32) -> list[list[int]]:
    """Top-5 class indices for each image after the centre ``input_size`` crop."""
    out: list[list[int]] = []
    device = next(observer.buffers()).device
    for i in range(0, len(images), batch):
        x = to_tensor([centre_crop(im, input_size) for im in images[i : i + batch]]).to(device)
        out += observer(x).topk(5, dim=1).indices.tolist()
    return out


def crop_groups(ds: Dataset, observers: dict[str, torch.nn.Module]) -> dict[int | None, list[str]]:
    """Classifiers grouped by the crop they need; ``{None: []}`` for human-only datasets."""
    if not (ds.classify and observers):
        return {None: []}
    groups: dict[int | None, list[str]] = {}
    for name, obs in observers.items():
        groups.setdefault(obs.spec.crop_size, []).append(name)
    return dict(sorted(groups.items()))


def _proc_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measurement:
    """One encode + decode: the bytes, the reconstruction, the times and the extra peak memory."""

    data: bytes
    decoded: Image.Image
    encode_s: float
    decode_s: float
    peak_mem_mb: float | None


def measure(codec: BenchCodec, image: Image.Image, setting: float) -> Measurement:
    """Encode and decode once, timing each; peak memory is the rise of the process's peak RSS."""
    can_peak = _reset_peak()
    rss0 = _proc_status("VmRSS")
    t0 = time.perf_counter()
    data = codec.encode(image, setting)
    t1 = time.perf_counter()
    decoded = codec.decode(data)
    t2 = time.perf_counter()
    hwm = _proc_status("VmHWM") if can_peak else None
    peak = None if hwm is None or rss0 is None else max(0, hwm - rss0) / 2**20
    if decoded.size != image.size:
        raise RuntimeError(f"{codec.name} decoded {decoded.size}, expected {image.size}")
    return Measurement(bytes(data), decoded.convert("RGB"), t1 - t0, t2 - t1, peak)
