"""Atomic writes: outputs get the permissions a plain write would give them."""

from __future__ import annotations

import os
import stat

import pytest

from odic.fileio import write_bytes_atomic


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_new_files_follow_the_umask_not_mkstemps_private_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_bytes_atomic(tmp_path / "out.odic", b"data")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.odic").stat().st_mode) == 0o666 & ~umask


def test_overwriting_keeps_the_files_mode(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes_atomic(target, b"new", force=True)
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o640
