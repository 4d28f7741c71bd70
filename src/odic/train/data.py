"""Training data: photos held in memory as uint8, random crops and flips.

Images smaller than the crop are padded by reflection (replicate when reflection is impossible),
so every crop is full size; this is rare with ``../shared/data/train`` (all 256x256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}


def list_images(folders: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder not found: {folder}")
        files.extend(sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
    return files


def load_images(files: list[Path]) -> list[Tensor]:
    """All images as uint8 CHW tensors (RGB)."""
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append(torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous())
    return out


def pad_to(img: Tensor, crop: int) -> Tensor:
    h, w = img.shape[-2:]
    ph, pw = max(crop - h, 0), max(crop - w, 0)
    if ph == 0 and pw == 0:
        return img
    mode = "reflect" if ph < h and pw < w else "replicate"
    padded = F.pad(img[None].float(), [0, pw, 0, ph], mode=mode)[0]
    return padded.to(img.dtype)


class CropSampler:
    """Draws random crops with a generator whose state is saved with the checkpoint."""

    def __init__(self, images: list[Tensor], crop: int, seed: int):
        self.images = [pad_to(im, crop) for im in images]
        self.crop = crop
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, size: int) -> Tensor:
        g = self.generator
        idx = torch.randint(len(self.images), (size,), generator=g).tolist()
        crops = []
        for i in idx:
            im = self.images[i]
            h, w = im.shape[-2:]
            top = int(torch.randint(h - self.crop + 1, (1,), generator=g))
            left = int(torch.randint(w - self.crop + 1, (1,), generator=g))
            c = im[:, top : top + self.crop, left : left + self.crop]
            if bool(torch.rand(1, generator=g) < 0.5):
                c = c.flip(-1)
            crops.append(c)
        return torch.stack(crops).float() / 255.0
