"""Golden vectors pin the format and the model: committed streams must decode the same forever.

Regenerate with scripts/make_golden.py whenever the bundled weights change (new model id), and with
``--model NAME`` when another shipped model does (tests/golden/models/NAME/); what a vector holds is
in tests/golden_vectors.py.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

import odic
import odic.weights

from .golden_vectors import GOLDEN, latent_digest

MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
# Vectors of the other models the package must decode: each shipped model's own, and earlier
# defaults' (tests/golden/models/<model id>/), decoded by the model installed under that name or,
# for an encoder-only release, by the default, which must list them in its ``decodes``.
OTHERS = {d.name: (d, json.loads((d / "manifest.json").read_text()))
          for d in sorted((GOLDEN / "models").glob("*")) if (d / "manifest.json").exists()}


def test_vectors_match_bundled_model(codec):
    assert MANIFEST["model_id"] == codec.model_id, "bundled weights changed: run scripts/make_golden.py"
    assert MANIFEST["weights_hash"] == codec.weights_hash.hex()


def test_every_other_installed_model_has_vectors():
    installed = set(odic.weights.installed_models()) - {odic.weights.DEFAULT_MODEL}
    assert installed <= set(OTHERS), f"run scripts/make_golden.py --model NAME for {sorted(installed - set(OTHERS))}"


CASES = [(GOLDEN, MANIFEST, name) for name in sorted(MANIFEST["vectors"])] + [
    (folder, manifest, name) for folder, manifest in OTHERS.values() for name in sorted(manifest["vectors"])
]


@pytest.mark.parametrize(("folder", "manifest", "name"), CASES,
                         ids=[f"{m['model_id']}/{n}" for _f, m, n in CASES])
def test_golden_vector(codec, folder, manifest, name):
    """Every vector decodes to the same latents (exactly) and pixels (within one level) forever."""
    expected = manifest["vectors"][name]
    data = (folder / f"{name}.odic").read_bytes()
    written_by = (manifest["model_id"], bytes.fromhex(manifest["weights_hash"]))
    decoder = codec
    if folder != GOLDEN:
        if folder.name in odic.weights.installed_models():  # shipped under the folder's name
            decoder = odic.load(folder.name)
            assert (decoder.model_id, decoder.weights_hash) == written_by, "shipped model changed: run make_golden.py"
        else:  # an earlier model with the default's decoder
            assert written_by in codec.decodes, f"{folder.name}: neither installed nor decodable by the default"
    assert odic.Codec.info(data) == expected["header"]
    assert latent_digest(decoder, data) == expected["latents_sha256"]  # exact on every machine
    img = codec.decompress(data)  # the default codec finds the stream's model itself
    ref = np.asarray(Image.open(folder / f"{name}.png"))
    got = np.asarray(img)
    assert got.shape == ref.shape
    assert int(np.abs(got.astype(int) - ref.astype(int)).max()) <= 1  # across CPU types: one level
    if hashlib.sha256(got.tobytes()).hexdigest() != expected["pixels_sha256"]:
        pytest.xfail("pixels differ by at most one level from the reference machine (documented tolerance)")
