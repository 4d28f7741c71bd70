"""Encoding options, checked in one place before any work: the observer mix and refinement bounds.

Torch-free, so the command line can check its arguments (and show defaults) before a model loads.
"""

from __future__ import annotations

import math

#: The classifier the machine observer means unless told otherwise: the one odic models train with.
DEFAULT_CLASSIFIER = "efficientnet_lite0"
#: Refinement steps allowed per image: a few hundred already cost minutes per megapixel.
MAX_REFINE_STEPS = 1000
#: Largest shift of refinement's random classifier views: beyond it a view loses too much image.
MAX_REFINE_SHIFT = 64
#: Names the two pure observers answer to.
OBSERVER_NAMES = {"human": 0.0, "machine": 1.0}


def parse_observer(observer: float | str) -> float:
    """0 or 'human' keeps what people see; 1 or 'machine' what a classifier needs; floats mix."""
    if isinstance(observer, str):
        if observer.lower() in OBSERVER_NAMES:
            return OBSERVER_NAMES[observer.lower()]
        try:
            observer = float(observer)
        except ValueError:
            raise ValueError(f"observer must be 'human', 'machine' or a number in [0, 1], got {observer!r}") from None
    value = float(observer)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"observer must be in [0, 1], got {observer!r}")
    return value


def check_refine(steps, shift) -> None:
    """Raise ``ValueError`` unless ``steps`` and ``shift`` are whole numbers within their bounds."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_REFINE_STEPS:
        raise ValueError(f"refine must be a whole number of steps from 0 to {MAX_REFINE_STEPS}, got {steps!r}")
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= MAX_REFINE_SHIFT:
        raise ValueError(f"refine_shift must be a whole number of pixels from 0 to {MAX_REFINE_SHIFT}, got {shift!r}")
