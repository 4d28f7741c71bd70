"""map_single_threaded: pieces run at once on separate threads, one torch thread each, the caller's setting kept."""

from __future__ import annotations

import threading
import time

import torch

from odic.parallel import map_single_threaded


def test_pieces_run_on_several_threads_with_one_torch_thread_each():
    seen = []

    def piece(i: int) -> int:
        seen.append((threading.get_ident(), torch.get_num_threads()))
        time.sleep(0.05)  # long enough that a second worker picks up the next piece
        return i * i

    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert map_single_threaded(piece, range(6)) == [i * i for i in range(6)]
        assert len({ident for ident, _ in seen}) == 2  # both workers were used
        assert {n for _, n in seen} == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_one_worker_runs_in_the_callers_thread():
    idents = map_single_threaded(lambda _: threading.get_ident(), range(3), workers=1)
    assert set(idents) == {threading.get_ident()}
