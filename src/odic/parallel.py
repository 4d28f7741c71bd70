"""Run work on several threads where each piece runs on one intra-op thread: fast and deterministic.

Why: the decoder's float kernels (oneDNN) split their work by thread count, which moves a pixel
by one grey level between 1 and 2 threads. Pieces of fixed size (strips of an image, images of a
batch, files of a folder) each computed on one thread give the same result whoever runs them,
and the thread count only decides how many run at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def map_single_threaded(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``[fn(i) for i in items]``, at most ``workers`` at once (default: torch's thread count).

    Each call's torch ops run on one thread; the caller's thread setting is restored afterwards
    (PyTorch's setting is per thread, MKL's is global).
    """
    workers = min(max(1, workers or torch.get_num_threads()), len(items))
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        if workers <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return list(pool.map(fn, items))
    finally:
        torch.set_num_threads(saved)
