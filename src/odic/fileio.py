"""Safe output: write to a temporary file beside the target, then rename (never half-written)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    """The process umask (read by setting it and putting it back: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None], force: bool = False) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path``; refuse to replace it unless ``force``."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path}: exists (use --force to overwrite)")
    if path.exists() and path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"{parent}: output folder does not exist")
    # mkstemp makes the file private (0600): give it the mode a plain open() would have, or the
    # mode of the file it replaces, so that outputs are as readable as any other file written here.
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, force: bool = False) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), force)
