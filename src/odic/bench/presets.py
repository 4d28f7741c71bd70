"""The project's protocol benches by name (``odic bench --preset NAME``): one place for each grid.

Why: the gates a training checkpoint passes, the full protocol of a candidate and the evaluations
docs/results.md reports must measure the same settings every time (settings close to every at_bpp
target for both odic and the HEVC reference: docs/results.md, "A denser grid"). The scripts in
scripts/ only name a preset, the model(s) and the output folder.

Each odic spec of a preset is benched once per ``--model`` (``:model=M`` appended, models in
turn), or once with the installed default model when none is given; ``{refine}`` in a spec is the
preset's refinement steps unless ``--refine`` overrides them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import BenchError

#: Where the presets' dataset folders live unless --data-root says otherwise: data beside the checkout.
DEFAULT_DATA_ROOT = "../shared/data"

KODAK_FAST = "odic:alpha=0:q=2/8/14/20/25/32/40/48/55/65/90"  # odic, fast encoder, settings near every target
HEVC_DENSE = "hevc-raw:q=3/8/11/14/17/20/23/26/30/34/38/48/58"  # the BD-rate reference, as dense on Kodak
MACHINE_REFINED = "odic:alpha=1:q=2/25/55:refine={refine}:refine_shift=8"  # the refined encoder, views
RELEASE_Q = "q=2/25/55/90"
RELEASE_OBSERVERS = tuple(f"odic:alpha={a}:{RELEASE_Q}" for a in ("0", "0.25", "0.5", "0.75", "1"))
UNSEEN = ("efficientnet_lite1", "efficientnet_lite2")  # the classifiers never used in training


@dataclass(frozen=True)
class Preset:
    """One protocol bench: a dataset (its name and its folder under the data root) and the grid."""

    description: str
    dataset: str
    folder: str
    codecs: tuple[str, ...]
    classifiers: tuple[str, ...] = ()
    limit: int | None = None
    refine: int | None = None


def _kodak(description: str, *codecs: str, refine: int | None = None) -> Preset:
    return Preset(description, "kodak", "kodak", codecs, refine=refine)


def _imagenet(description: str, classifiers: tuple[str, ...], limit: int, *codecs: str,
              refine: int | None = None) -> Preset:
    return Preset(description, "imagenet", "imagenet-sample", codecs, classifiers, limit, refine)


PRESETS: dict[str, Preset] = {
    "gate-kodak": _kodak("gate: Kodak, the fast encoder against the dense HEVC grid (MS-SSIM BD-rate)",
                         KODAK_FAST, HEVC_DENSE),
    "gate-refine": _imagenet("gate: the machine observer, refined with views, EfficientNet-Lite0",
                             ("efficientnet_lite0",), 40, MACHINE_REFINED, "hevc-raw", refine=50),
    "full-kodak-dense": _kodak("full protocol: Kodak, refined and fast encoders, dense grids",
                               "odic:alpha=0:q=2/14/25/32/55/65/90:refine={refine}", KODAK_FAST, HEVC_DENSE,
                               refine=20),
    "full-lite0": _imagenet("full protocol: the training observer, refined and fast encoders",
                            ("efficientnet_lite0",), 100, MACHINE_REFINED, "odic:alpha=1:q=2/25/55", "hevc-raw",
                            refine=50),
    "full-unseen": _imagenet("full protocol: the classifiers never used in training (quality 40 ~ 0.25 bpp)",
                             UNSEEN, 100, "odic:alpha=1:q=25/40/55:refine={refine}:refine_shift=8", "hevc-raw",
                             refine=50),
    "release-kodak": _kodak("release: Kodak, every observer setting beside the classical codecs",
                            *RELEASE_OBSERVERS, "hevc-raw", "webp"),
    "release-imagenet": _imagenet("release: every observer setting, EfficientNet-Lite0", ("efficientnet_lite0",),
                                  100, *RELEASE_OBSERVERS, "hevc-raw", "webp"),
    "release-imagenet-unseen": _imagenet("release: the machine observer, the classifiers never used in training",
                                         UNSEEN, 100, f"odic:alpha=1:{RELEASE_Q}", "hevc-raw"),
    "refine-kodak": _kodak("refinement against the fast encoder: Kodak, human observer",
                           f"odic:alpha=0:{RELEASE_Q}:refine={{refine}}", f"odic:alpha=0:{RELEASE_Q}", "hevc-raw",
                           "webp", refine=20),
    "refine-imagenet": _imagenet("refinement against the fast encoder: EfficientNet-Lite0", ("efficientnet_lite0",),
                                 100, f"odic:alpha=1:{RELEASE_Q}:refine={{refine}}", f"odic:alpha=1:{RELEASE_Q}",
                                 "hevc-raw", "webp", refine=20),
    "refine-imagenet-unseen": _imagenet("refinement against the fast encoder: the classifiers never used",
                                        UNSEEN, 50, "odic:alpha=1:q=2/25/55:refine={refine}",
                                        "odic:alpha=1:q=2/25/55", "hevc-raw", refine=20),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; BenchError naming the known ones otherwise."""
    if name not in PRESETS:
        raise BenchError(f"unknown preset '{name}'; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_codecs(name: str, models: Sequence[str] = (), refine: int | None = None) -> list[str]:
    """The codec specs of a preset: its odic specs once per model (model-major), then the others."""
    preset = get_preset(name)
    if refine is not None and preset.refine is None:
        raise BenchError(f"preset '{name}' has no refined encoder to give --refine to")
    steps = preset.refine if refine is None else refine
    odic = [spec.format(refine=steps) for spec in preset.codecs if spec.startswith("odic:")]
    others = [spec for spec in preset.codecs if not spec.startswith("odic:")]
    per_model = [[f"{spec}:model={m}" for spec in odic] for m in models] if models else [odic]
    return [spec for specs in per_model for spec in specs] + others


def preset_data_folder(name: str, data_root: str | Path | None = None) -> Path:
    """The dataset folder of a preset under ``data_root`` (default: $ODIC_DATA, else DEFAULT_DATA_ROOT)."""
    root = data_root if data_root is not None else os.environ.get("ODIC_DATA", DEFAULT_DATA_ROOT)
    return Path(root) / get_preset(name).folder
