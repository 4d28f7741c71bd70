"""What makes decoding a hostile stream safe: bounded rANS reads and bounded symbols.

A valid CRC proves nothing against an attacker, and CompressAI's rANS decoder reads its input
without bounds checks. :meth:`odic.model.OdicModel.decompress` uses these guards so that any
string decodes to the image its encoder meant, or fails with a one-line ``FormatError``: never a
crash, a hang, or a silent garbage image.
"""

from __future__ import annotations

from torch import Tensor

from ..bitstream import FormatError

#: Largest |symbol| a real encoder produces is in the hundreds; escaped values far beyond this
#: only come from forged strings, and would make CompressAI's encoder loop forever (its escape
#: loop shifts an int32 by 32 bits or more), so they are refused before re-encoding.
MAX_SYMBOL = 1 << 20


def check_symbol_range(symbols: Tensor, name: str) -> None:
    # float64: |int32 min| would overflow back to a negative int32 and pass; NaN fails too
    if symbols.numel() and not bool((symbols.double().abs() <= MAX_SYMBOL).all()):
        raise FormatError(f"corrupted entropy-coded data ({name} symbols out of range)")


def rans_padding(nbytes: int, symbols: int) -> int:
    """Zero bytes to append to an rANS string so CompressAI's decoder never reads past the buffer.

    The decoder reads 32-bit words and only moves forward: at most one word per symbol for the
    main alphabet, plus the bypass bits of escaped values. Escape lengths are 4-bit groups that
    continue while a group is 15, so the bits of the real string can announce at most 15x their
    own size of bypass data (15 * nbytes); once it reads zeros a group of 15 cannot last beyond the
    64-bit state, so each further symbol costs a bounded few words (8 bytes each covers the
    common case, the constant covers the bounded escapes while the state drains).
    """
    return 16 * nbytes + 8 * symbols + 65536


def padded(strings: list[bytes], symbols_per_string: int) -> list[bytes]:
    return [s + bytes(rans_padding(len(s), symbols_per_string)) for s in strings]
