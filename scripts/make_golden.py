"""Regenerate the golden test vectors in tests/golden/ for the bundled model.

Run after shipping new weights (the vectors name the model id they need):
    .venv/bin/python scripts/make_golden.py
    .venv/bin/python scripts/make_golden.py --model odic-people   # another shipped model: tests/golden/models/<name>/
    .venv/bin/python scripts/make_golden.py --pixels-only         # the decoder's arithmetic changed
The previous default's vectors move to tests/golden/models/<its id>/ and stay tested, when it
ships on under its id or the new model lists it in ``decodes`` (tests/golden_vectors.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import odic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.golden_vectors import CASES, GOLDEN, folder_for, redecode_pixels, write_vectors  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a shipped model other than the default (its own folder)")
    ap.add_argument("--pixels-only", action="store_true",
                    help="keep every stream, re-decode the reference PNGs of all folders (after a decoder change)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    codec = odic.load(args.model)
    if args.pixels_only:
        for folder in [GOLDEN, *sorted(p for p in (GOLDEN / "models").iterdir() if p.is_dir())]:
            print(f"{folder.name}: {redecode_pixels(codec, folder)} vectors' pixels changed")
        return
    write_vectors(codec, folder_for(args.model))
    print(f"wrote {len(CASES)} vectors for {codec.model_id}")


if __name__ == "__main__":
    main()
