"""``odic bench``: codecs x datasets x observers, measured the same way for everyone.

    from odic.bench import BenchConfig, load_dataset, run_bench
    summary = run_bench(BenchConfig([load_dataset("kodak", "data/kodak")], ["jpeg", "hevc-raw"], "out"))

See docs/bench.md for the protocol and the summary.json schema.
"""

from .config import AT_BPP, DEFAULT_CODECS, BenchConfig, BenchError
from .datasets import Dataset, DatasetError, Item, load_dataset, skimage_photos
from .metrics import bd_rate, interp_at_bpp, msssim, psnr
from .runner import codec_label, run_bench

__all__ = [
    "AT_BPP", "DEFAULT_CODECS", "BenchConfig", "BenchError", "Dataset", "DatasetError", "Item",
    "bd_rate", "codec_label", "interp_at_bpp", "load_dataset", "msssim", "psnr", "run_bench",
    "skimage_photos",
]
