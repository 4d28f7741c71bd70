"""Reading images of every kind into the RGB array the model codes, and back.

Policy (documented in the README):
* EXIF orientation is applied, so the coded image is what viewers show.
* An embedded ICC profile is converted to sRGB (colour stays right); ICC, EXIF and XMP are then
  dropped (odic streams carry no metadata).
* Grayscale (L, 1), 16-bit grayscale (I;16, I), RGB, RGBA and LA keep their kind through a round
  trip; alpha is stored losslessly beside the lossy RGB. Palette images become RGB (or RGBA when
  they have transparency); CMYK and YCbCr become RGB. 16-bit data is coded at 8 bits.
* Animated images: only the first frame is coded, with a warning.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .bitstream import ColorMode

#: Decompression-bomb guard used when reading files and streams (like PIL.Image.MAX_IMAGE_PIXELS).
MAX_PIXELS = 256_000_000


def set_max_pixels(limit: int | None) -> None:
    """Change the pixel limit for reading images and decoding streams (None = no limit)."""
    global MAX_PIXELS
    MAX_PIXELS = limit  # type: ignore[assignment]


def get_max_pixels() -> int | None:
    return MAX_PIXELS


class ImageReadError(ValueError):
    """The input is not an image odic can read; the message says why."""


@dataclass
class Prepared:
    """An image ready to code: RGB uint8 (H, W, 3), its original mode and optional alpha plane."""

    rgb: np.ndarray
    mode: ColorMode
    alpha: np.ndarray | None = None


def open_image(path: str | Path) -> Image.Image:
    """Open an image file, raising :class:`ImageReadError` with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            if getattr(im, "n_frames", 1) > 1:
                warnings.warn(f"{path}: animated image, only the first frame is coded", stacklevel=2)
                im.seek(0)
            im.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: {_short(exc)}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot read image ({_short(exc)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    return im


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _to_srgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return im
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        out_mode = {"CMYK": "RGB", "L": "L", "LA": "LA"}.get(im.mode, im.mode)
        if im.mode in ("L", "LA"):
            return im  # a gray profile applied to gray stays gray; keep values
        return ImageCms.profileToProfile(im, src, dst, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError):
        warnings.warn("embedded ICC profile could not be applied; colours are used as stored", stacklevel=3)
        return im


def prepare_pil(im: Image.Image) -> Prepared:
    """Normalise any PIL image to RGB + mode + alpha, following the module's policy."""
    if im.width < 1 or im.height < 1:
        raise ImageReadError("image has no pixels")
    im = ImageOps.exif_transpose(im)
    im = _to_srgb(im)
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    elif mode == "PA":
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        arr = np.asarray(im).astype(np.float64)
        if mode == "I" and arr.max(initial=0) <= 255:
            arr8 = arr.clip(0, 255).astype(np.uint8)
        else:
            arr8 = np.round(arr.clip(0, 65535) / 257.0).astype(np.uint8)
        return Prepared(np.repeat(arr8[..., None], 3, axis=2), ColorMode.I16)
    if mode == "F":
        arr8 = np.round(np.asarray(im).clip(0, 1) * 255).astype(np.uint8)
        return Prepared(np.repeat(arr8[..., None], 3, axis=2), ColorMode.L)
    if mode in ("1", "L"):
        g = np.asarray(im.convert("L"))
        return Prepared(np.repeat(g[..., None], 3, axis=2), ColorMode.L)
    if mode == "LA":
        la = np.asarray(im)
        return Prepared(np.repeat(la[..., :1], 3, axis=2), ColorMode.LA, la[..., 1].copy())
    if mode == "RGBA":
        rgba = np.asarray(im)
        return Prepared(np.ascontiguousarray(rgba[..., :3]), ColorMode.RGBA, rgba[..., 3].copy())
    if mode == "RGB":
        return Prepared(np.asarray(im).copy(), ColorMode.RGB)
    # CMYK, YCbCr, LAB, HSV, ...: convert to RGB on purpose.
    return Prepared(np.asarray(im.convert("RGB")).copy(), ColorMode.RGB)


def prepare_array(arr: np.ndarray) -> Prepared:
    """numpy HxW, HxWx1, HxWx3 or HxWx4; uint8, uint16 or float in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageReadError(f"array of shape {arr.shape} is not an image (H, W[, 1|2|3|4])")
    sixteen = a.dtype == np.uint16
    if a.dtype == np.uint8:
        a8 = a
    elif sixteen:
        a8 = np.round(a.astype(np.float64) / 257.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageReadError("array contains NaN or infinity")
        a8 = np.round(a.clip(0, 1) * 255).astype(np.uint8)
    else:
        raise ImageReadError(f"unsupported array dtype {a.dtype} (use uint8, uint16 or float)")
    c = a8.shape[2]
    if c == 1:
        return Prepared(np.repeat(a8, 3, axis=2), ColorMode.I16 if sixteen else ColorMode.L)
    if c == 2:
        return Prepared(np.repeat(a8[..., :1], 3, axis=2), ColorMode.LA, a8[..., 1].copy())
    if c == 4:
        return Prepared(np.ascontiguousarray(a8[..., :3]), ColorMode.RGBA, a8[..., 3].copy())
    return Prepared(np.ascontiguousarray(a8), ColorMode.RGB16 if sixteen else ColorMode.RGB)


def prepare(image) -> Prepared:
    """Accept a path, PIL image, numpy array or a CHW/HWC tensor."""
    if isinstance(image, (str, Path)):
        return prepare_pil(open_image(image))
    if isinstance(image, Image.Image):
        return prepare_pil(image)
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 3 and t.shape[0] in (1, 2, 3, 4) and t.shape[-1] not in (1, 2, 3, 4):
            t = t.permute(1, 2, 0)
        elif t.ndim == 3 and t.shape[0] in (1, 2, 3, 4):
            t = t.permute(1, 2, 0)  # ambiguous: torchvision convention is CHW
        arr = t.numpy()
        if arr.dtype not in (np.uint8,) and not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32) / 255.0
        return prepare_array(arr)
    if isinstance(image, np.ndarray):
        return prepare_array(image)
    raise ImageReadError(f"cannot code an object of type {type(image).__name__}")


def restore(rgb: np.ndarray, mode: ColorMode, alpha: np.ndarray | None) -> Image.Image:
    """Turn decoded RGB back into the original kind of image."""
    if mode in (ColorMode.L, ColorMode.I16, ColorMode.LA):
        gray = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        if mode == ColorMode.L:
            return Image.fromarray(gray)
        if mode == ColorMode.I16:
            return Image.fromarray(gray.astype(np.uint16) * 257)
        return Image.fromarray(np.stack([gray, alpha], axis=2))
    if mode == ColorMode.RGBA:
        return Image.fromarray(np.concatenate([rgb, alpha[..., None]], axis=2))
    return Image.fromarray(rgb)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> float (1, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [0, 1] -> uint8 HWC, rounding half up deterministically."""
    return torch.floor(x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
