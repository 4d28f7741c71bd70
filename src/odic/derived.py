"""Tensors derived from a module's parameters (rounded weights, tables, reparametrisations),
built once and reused until a parameter changes.

Why: a decode derives the same things from the same parameters every time (the integer weights of
the hyper-synthesis and context, GDN's reparametrisation per strip, the rANS tables as lists);
rebuilding them costs a measurable share of a decode (docs/results.md, "Speed and determinism").
Any change to a parameter (an optimizer step, ``load_state_dict``, an in-place op under
``torch.no_grad()``) bumps its version and the next call rebuilds; writes through ``.data`` bypass
the version counter and are not seen. The cache holds no reference to the module, so dropping a
model frees it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

T = TypeVar("T")

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def derived(owner: nn.Module, name: str, params: tuple[Tensor, ...], build: Callable[[], T]) -> T:
    """``build()`` memoised per (``owner``, ``name``) until one of ``params`` changes (version,
    storage, dtype, device). Callers must not modify what it returns."""
    key = tuple((p._version, p.data_ptr(), p.dtype, p.device, tuple(p.shape)) for p in params)
    entries = _CACHE.setdefault(owner, {})
    hit = entries.get(name)
    if hit is None or hit[0] != key:
        with torch.no_grad():  # inference only: keep no autograd graph alive in the cache
            hit = (key, build())
        entries[name] = hit
    return hit[1]
