"""The resumable store of finished measurements, and the keys its records are filed under.

Its own module so that the sweep (runner.py), which writes the cache, and the summary
(summary.py), which reads it, both depend on it and not on each other.

Each finished (image, codec, crop) batch of rows is appended to ``OUT/cache/rows-r<rank>.jsonl``
and classifier outputs on the originals to ``OUT/cache/refs-r<rank>.jsonl``; reading merges every
rank's files, so a rerun (or rank 0 after the barrier) sees what every rank finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from odic.codecs import BenchCodec


class Cache:
    """Append-only JSON-lines files per rank; reading merges every rank's files."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.rank = rank
        self.rows: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, dict[str, Any]] = {}
        self.reload()

    def reload(self) -> None:
        for kind, store in (("rows", self.rows), ("refs", self.refs)):
            for path in sorted(self.folder.glob(f"{kind}-r*.jsonl")):
                with open(path) as fh:
                    for line in fh:
                        try:
                            rec = json.loads(line)
                        except json.JSONDecodeError:
                            continue  # a line cut short by an interrupted run
                        store[rec["key"]] = rec

    def row(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """A cached row, unless it was made by a different encoder version, options or model."""
        rec = self.rows.get(key)
        if rec is None or rec.get("codec_id", fingerprint) != fingerprint:
            return None
        return rec

    def add(self, kind: str, records: list[dict[str, Any]]) -> None:
        store = self.rows if kind == "rows" else self.refs
        with open(self.folder / f"{kind}-r{self.rank}.jsonl", "a") as fh:
            for rec in records:
                fh.write(json.dumps(rec) + "\n")
                store[rec["key"]] = rec


def codec_fingerprint(codec: BenchCodec) -> str:
    """Short hash of what makes a codec's output (name, encoder version, options, odic model id).

    Stored with each cached row, so a new encoder or a retrained odic model is measured afresh
    instead of being mixed with stale rows under the same label.
    """
    cached = getattr(codec, "_bench_fingerprint", None)
    if cached is None:
        info = {"name": codec.name, "version": codec.version(), "options": codec.options()}
        cached = hashlib.sha1(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:12]
        codec._bench_fingerprint = cached  # type: ignore[attr-defined]
    return cached


def row_key(ds: str, image: str, label: str, setting: float, crop: int | None) -> str:
    return f"{ds}|{image}|{label}|{setting:g}|{crop or 'full'}"


def ref_key(ds: str, image: str, clf: str, crop: int) -> str:
    return f"{ds}|{image}|{clf}|{crop}"
