"""Calibrate ``machine_scale``: the median ratio of 1 - MS-SSIM to Lite0's normalised feature loss.

Degrades 24 training crops by blur, noise and colour quantisation and prints each distortion side
by side; the median ratio (0.117 when measured) is odic.losses.DEFAULT_MACHINE_SCALE.
"""

import glob
import sys

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

sys.path.insert(0, "src")
from odic.losses import human_distortion, machine_distortion  # noqa: E402
from odic.observers import create_observer  # noqa: E402

torch.set_num_threads(2)
obs = create_observer("efficientnet_lite0")
files = sorted(glob.glob("../shared/data/train/*.webp"))[::50][:24]
crops = [torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1).float() / 255 for f in files]
x = torch.stack(crops)[:, :, 64:192, 64:192]


def degrade(kind: str) -> torch.Tensor:
    if kind == "blur1":
        return TF.gaussian_blur(x, 9, 1.0)
    if kind == "blur2":
        return TF.gaussian_blur(x, 9, 2.0)
    if kind == "noise":
        return (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    return (x * 8).round() / 8


ratios = []
for kind in ["blur1", "blur2", "noise", "q"]:
    xh = degrade(kind)
    with torch.no_grad():
        dh = human_distortion(x, xh)
        dm = machine_distortion(obs, x, xh)
    ratios.append(dh / dm)
    print(kind, dh.mean().item(), dm.mean().item(), ratios[-1].median().item())
print("median ratio", torch.cat(ratios).median().item())
