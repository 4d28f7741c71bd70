"""How an image is cut for coding: padding to the model's stride, and tiles for large images.

The stream records the tile size (``bitstream.Header.tile_units``); the tile boxes themselves
follow from the header (``bitstream.tile_boxes``, ``coded_box``), so encoder and decoder agree.
Tiling bounds memory: decoding grows with the tile, not the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .bitstream import MAX_TILE_PIXELS, MODEL_STRIDE, TILE_MARGIN

#: Images larger than this (in pixels) are coded in tiles to bound memory.
TILE_THRESHOLD_PIXELS = 2048 * 2048
DEFAULT_TILE = 1024


def pad_to_stride(x: torch.Tensor) -> torch.Tensor:
    """Replicate the last row and column up to a multiple of the model's stride."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % MODEL_STRIDE, (-w) % MODEL_STRIDE
    return F.pad(x, [0, pw, 0, ph], mode="replicate") if ph or pw else x


def z_shape(h: int, w: int) -> tuple[int, int]:
    """The hyper-latent's size for an (h, w) tile: what ``OdicModel.decompress`` takes as ``shape``."""
    return math.ceil(h / MODEL_STRIDE), math.ceil(w / MODEL_STRIDE)


def even_tile(h: int, w: int) -> int:
    """The tile side for as many tiles as DEFAULT_TILE would give, but even, with no thin last row.

    Tiles overlap by TILE_MARGIN (FLAG_TILE_MARGIN), so a fixed side would leave slivers (a 4000 px
    wide image in 992 px steps ends in a 32 px column); sizing the tiles to the image avoids them.
    """
    rows, cols = math.ceil(h / DEFAULT_TILE), math.ceil(w / DEFAULT_TILE)
    side = max(math.ceil(h / rows), math.ceil(w / cols)) + 2 * TILE_MARGIN
    return min(math.ceil(side / MODEL_STRIDE) * MODEL_STRIDE, math.isqrt(MAX_TILE_PIXELS))


def tile_units(h: int, w: int, tile: int | None) -> int:
    """The header's tile field for an (h, w) image: ``tile`` px (0 = untiled, None = automatic)."""
    if tile is None:
        if h * w <= TILE_THRESHOLD_PIXELS:
            return 0
        tile = even_tile(h, w)
    if tile == 0:
        if h * w > MAX_TILE_PIXELS:
            raise ValueError(f"an image of {w}x{h} is too large to code untiled (at most {MAX_TILE_PIXELS} "
                             "pixels per tile); leave tile unset or give a tile size")
        return 0
    if tile < MODEL_STRIDE or tile % MODEL_STRIDE:
        raise ValueError(f"tile size must be a positive multiple of {MODEL_STRIDE}, got {tile}")
    if tile * tile > MAX_TILE_PIXELS:
        raise ValueError(f"tile size {tile} is above the largest allowed, {math.isqrt(MAX_TILE_PIXELS)}")
    return tile // MODEL_STRIDE
