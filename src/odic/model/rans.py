"""CompressAI's rANS coder for the latent y, with its tables handed over once instead of every call.

Why: ``GaussianConditional.compress``/``decompress`` convert the whole CDF table (64 x ~3000
entries) and every index to Python lists on each call, and build the decoded tensor from a Python
list: together more than the rANS coding itself (measured in docs/reliability.md, "Where a decode
spends its time"). The coder, the tables and the bytes are CompressAI's, so streams are unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from compressai.ans import RansDecoder
from compressai.entropy_models import GaussianConditional
from torch import Tensor

from ..derived import derived


def _tables(gc: GaussianConditional) -> tuple[list, list, list]:
    """The CDF tables as lists (cdf, lengths, offsets), rebuilt when ``gc.update()`` replaced them."""
    return derived(gc, "rans_tables", (gc._quantized_cdf, gc._cdf_length, gc._offset),
                   lambda: (gc._quantized_cdf.tolist(), gc._cdf_length.reshape(-1).int().tolist(),
                            gc._offset.reshape(-1).int().tolist()))


def _as_list(t: Tensor) -> list[int]:
    return t.reshape(-1).to(torch.int32).cpu().numpy().tolist()


def encode(gc: GaussianConditional, symbols: Tensor, indexes: Tensor) -> bytes:
    """One image's integer symbols (``round(y - means)``) with their CDF indexes -> rANS bytes."""
    cdf, lengths, offsets = _tables(gc)
    return gc.entropy_coder.encode_with_indexes(_as_list(symbols), _as_list(indexes), cdf, lengths, offsets)


class Decoder:
    """Inverse of :func:`encode`, a pass at a time: the symbols of the first ``decode`` call, then of
    the next, as if :func:`encode` had been given them concatenated (``string`` padded by the caller).
    """

    def __init__(self, gc: GaussianConditional, string: bytes):
        self._tables = _tables(gc)
        self._decoder = RansDecoder()
        self._decoder.set_stream(string)

    def decode(self, indexes: Tensor) -> Tensor:
        """int32 symbols shaped like ``indexes``."""
        values = self._decoder.decode_stream(_as_list(indexes), *self._tables)
        return torch.from_numpy(np.asarray(values, dtype=np.int32)).reshape(indexes.shape)
