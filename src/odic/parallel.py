"""Run work on several threads where each piece runs on one intra-op thread: fast and deterministic.

Why: the decoder's float kernels (oneDNN) split their work by thread count, which moves a pixel
by one grey level between 1 and 2 threads. Pieces of fixed size (strips of an image, images of a
batch, files of a folder) each computed on one thread give the same result whoever runs them,
and the thread count only decides how many run at once.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def _onednn_enabled() -> Iterator[None]:
    """oneDNN on for the block, whatever the caller set: its kernels are part of what gives the result.

    The flag is global, so it is only touched when off: nested calls from worker threads then
    never flip it under each other.
    """
    if torch.backends.mkldnn.enabled:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # oneDNN's TF32 notice when toggling the flag
        ctx = torch.backends.mkldnn.flags(enabled=True)
        ctx.__enter__()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ctx.__exit__(None, None, None)


def map_single_threaded(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``[fn(i) for i in items]``, at most ``workers`` at once (default: torch's thread count).

    Each call's torch ops run on one thread, with oneDNN on; the caller's settings are restored
    afterwards (PyTorch's thread count is per thread, MKL's and the oneDNN flag are global).
    """
    workers = min(max(1, workers or torch.get_num_threads()), len(items))
    saved = torch.get_num_threads()
    with _onednn_enabled():
        try:
            torch.set_num_threads(1)
            if workers <= 1:
                return [fn(i) for i in items]
            with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
                return list(pool.map(fn, items))
        finally:
            torch.set_num_threads(saved)
