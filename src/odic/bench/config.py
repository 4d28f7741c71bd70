"""What a benchmark run measures and where it writes it; read by the sweep and by the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .datasets import Dataset

AT_BPP = (0.125, 0.25, 0.5, 1.0)
DEFAULT_CODECS = ("jpeg", "jpeg:chroma=444", "webp", "jpeg2000", "hevc", "hevc:chroma=420", "hevc-raw",
                  "avif", "jxl", "bpg")


class BenchError(ValueError):
    """Bad benchmark input (unknown codec or classifier, unreadable data); one-line message."""


@dataclass
class BenchConfig:
    """What to measure and where to write it."""

    datasets: list[Dataset]
    codecs: list[str]
    out: Path
    classifiers: list[str] = field(default_factory=list)
    limit: int | None = None
    threads: int = 1
    device: str = "cpu"
    at_bpp: tuple[float, ...] = AT_BPP
    add_reference: bool = True
    plots: bool = True
    progress: bool = True
    seed: int = 0
    command: str = ""
