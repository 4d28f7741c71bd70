"""Shared fixtures. Tests that need ../shared/data skip locally when it is absent, never under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("ODIC_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "kodak").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data not found at {root} (set ODIC_DATA); CI must not skip this test")
        pytest.skip(f"shared data not found at {root}")
    return root


@pytest.fixture(scope="session")
def codec():
    import odic

    torch.set_num_threads(2)
    return odic.load()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth gradients plus mild noise (uint8 HxWx3)."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([
        128 + 100 * np.sin(xx / 17.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)
    ], axis=2)
    img += g.normal(0, 6, img.shape)
    return img.clip(0, 255).astype(np.uint8)
