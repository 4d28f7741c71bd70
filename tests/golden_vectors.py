"""The golden vectors: which images, settings and digests pin a model's streams.

``scripts/make_golden.py`` writes them with :func:`write_vectors`; ``tests/test_golden.py`` checks
them with :func:`latent_digest`. Each vector: a small .odic stream, and in manifest.json its header,
the SHA-256 of its entropy-decoded latents (identical on every machine) and of its decoded pixels
(this machine), plus a decoded PNG to check other machines against within one level.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

import odic
import odic.weights
from odic.bitstream import coded_box, tile_boxes, unpack
from odic.tiling import z_shape

from .conftest import smooth_image

GOLDEN = Path(__file__).parent / "golden"
CASES = [
    ("rgb_q20_human", lambda: Image.fromarray(smooth_image(48, 80, 1)), dict(quality=20, observer=0.0)),
    ("rgb_q70_machine", lambda: Image.fromarray(smooth_image(64, 64, 2)), dict(quality=70, observer=1.0)),
    ("gray_q50_mixed", lambda: Image.fromarray(smooth_image(33, 47, 3)[..., 0]), dict(quality=50, observer=0.5)),
    ("rgba_tiled", lambda: Image.fromarray(np.dstack([smooth_image(70, 140, 4), smooth_image(70, 140, 5)[..., 1]])),
     dict(quality=40, observer=0.25, tile=64)),
]


def latent_digest(codec: odic.Codec, data: bytes) -> str:
    """SHA-256 over the entropy-decoded z and y symbols of every tile (the model's verified decode)."""
    stream = unpack(data)
    hd = stream.header
    h = hashlib.sha256()
    for box, (y, z) in zip(tile_boxes(hd), stream.tiles, strict=True):
        shape = z_shape(*coded_box(hd, box)[2:])
        y_hat, z_hat = codec.model.decode_latents([[y], [z]], shape, hd.quality_code, hd.alpha_code)
        h.update(z_hat.numpy().tobytes())
        h.update(y_hat.numpy().tobytes())
    return h.hexdigest()


def folder_for(model: str | None) -> Path:
    """The default model's vectors sit in tests/golden/, every other shipped model's in models/<name>/."""
    return GOLDEN if model in (None, odic.weights.DEFAULT_MODEL) else GOLDEN / "models" / model


def write_vectors(codec: odic.Codec, out: Path) -> None:
    """Write the CASES streams, decoded PNGs and manifest of ``codec`` into ``out``.

    For the default's folder, the previous default's vectors move to models/<its id>/ and stay
    tested, when that model ships on under its id or the new one lists it in ``decodes``.
    """
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if out == GOLDEN and manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        written_by = (previous["model_id"], bytes.fromhex(previous["weights_hash"]))
        if written_by in codec.decodes or previous["model_id"] in odic.weights.installed_models():
            keep = GOLDEN / "models" / previous["model_id"]
            keep.mkdir(parents=True, exist_ok=True)
            for old in out.glob("*.*"):
                old.rename(keep / old.name)
    for old in out.glob("*.*"):
        old.unlink()
    manifest = {"model_id": codec.model_id, "weights_hash": codec.weights_hash.hex(), "vectors": {}}
    for name, make, kw in CASES:
        data = codec.compress(make(), **kw)
        (out / f"{name}.odic").write_bytes(data)
        img = codec.decompress(data)
        img.save(out / f"{name}.png")
        manifest["vectors"][name] = {
            "header": odic.Codec.info(data),
            "latents_sha256": latent_digest(codec, data),
            "pixels_sha256": hashlib.sha256(np.asarray(img).tobytes()).hexdigest(),
        }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")


def redecode_pixels(codec: odic.Codec, out: Path) -> int:
    """Rewrite the decoded PNGs and pixel digests of ``out`` from its streams, which stay as they are.

    For a change of the decoder's arithmetic (its kernels, not the format): the latents must not
    move, and the pixels may move by one level at most, both checked here before anything is written.
    Returns how many vectors' pixels changed.
    """
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    changed = 0
    for name, expected in manifest["vectors"].items():
        data = (out / f"{name}.odic").read_bytes()
        if latent_digest(codec._codec_for(unpack(data).header), data) != expected["latents_sha256"]:
            raise SystemExit(f"{out.name}/{name}: the latents changed; that is a format change, not a decoder one")
        img = codec.decompress(data)
        got, ref = np.asarray(img).astype(int), np.asarray(Image.open(out / f"{name}.png")).astype(int)
        if got.shape != ref.shape or np.abs(got - ref).max() > 1:
            raise SystemExit(f"{out.name}/{name}: pixels moved by more than one level")
        digest = hashlib.sha256(np.asarray(img).tobytes()).hexdigest()
        if digest != expected["pixels_sha256"]:
            changed += 1
            img.save(out / f"{name}.png")
            expected["pixels_sha256"] = digest
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return changed
