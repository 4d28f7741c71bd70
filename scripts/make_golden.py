"""Regenerate the golden test vectors in tests/golden/ for the bundled model.

Run after shipping new weights (the vectors name the model id they need):
    .venv/bin/python scripts/make_golden.py
    .venv/bin/python scripts/make_golden.py --model odic-people   # another shipped model: tests/golden/models/<name>/
When the new model lists the previous one in its ``decodes`` (same decoder, encoder-only
training), the previous vectors move to tests/golden/earlier/<model id>/ and stay tested: the
new model must decode them to the same latents and pixels. When the previous default ships on
as a model named by its id (src/odic/weights/<model id>.pt), they move to
tests/golden/models/<model id>/ and stay tested against it.
Each vector: a small .odic stream, and in manifest.json its header, the SHA-256 of its
entropy-decoded latents (identical on every machine) and of its decoded pixels (this machine), plus
a decoded PNG to check other machines against within one level.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import odic
import odic.weights

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import smooth_image  # noqa: E402

OUT = ROOT / "tests" / "golden"
CASES = [
    ("rgb_q20_human", lambda: Image.fromarray(smooth_image(48, 80, 1)), dict(quality=20, observer=0.0)),
    ("rgb_q70_machine", lambda: Image.fromarray(smooth_image(64, 64, 2)), dict(quality=70, observer=1.0)),
    ("gray_q50_mixed", lambda: Image.fromarray(smooth_image(33, 47, 3)[..., 0]), dict(quality=50, observer=0.5)),
    ("rgba_tiled", lambda: Image.fromarray(np.dstack([smooth_image(70, 140, 4), smooth_image(70, 140, 5)[..., 1]])),
     dict(quality=40, observer=0.25, tile=64)),
]


def latent_digest(codec, data: bytes) -> str:
    """SHA-256 over the entropy-decoded y and z symbols of every tile."""
    from odic.bitstream import coded_box, tile_boxes, unpack

    stream = unpack(data)
    m = codec.model
    h = hashlib.sha256()
    hd = stream.header
    for box, (y, z) in zip(tile_boxes(hd), stream.tiles, strict=True):
        shape = odic.api._z_shape(*coded_box(hd, box)[2:])
        z_hat = m.entropy_bottleneck.decompress([z], shape)
        idx, means = m._entropy_parameters(z_hat, hd.quality_code, hd.alpha_code)
        y_hat = m.gaussian_conditional.decompress([y], idx, means=means)
        h.update(z_hat.numpy().tobytes())
        h.update(y_hat.numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a shipped model other than the default (its own folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    codec = odic.load(args.model)
    out = OUT if args.model in (None, odic.weights.DEFAULT_MODEL) else OUT / "models" / args.model
    write_vectors(codec, out, keep_earlier=out == OUT)


def write_vectors(codec: odic.Codec, out: Path, keep_earlier: bool) -> None:
    """Write the CASES streams, decoded PNGs and manifest of ``codec`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    if keep_earlier and manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        written_by = (previous["model_id"], bytes.fromhex(previous["weights_hash"]))
        keep = None
        if written_by in codec.decodes:  # keep them: the new model must still decode them
            keep = out / "earlier" / previous["model_id"]
        elif previous["model_id"] in odic.weights.installed_models():  # the old default ships on under its id
            keep = out / "models" / previous["model_id"]
        if keep is not None:
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
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(CASES)} vectors for {codec.model_id}")


if __name__ == "__main__":
    main()
