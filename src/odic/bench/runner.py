"""The sweep: every image x codec x setting (x classifier crop size), resumable and shardable.

Resume: each finished (image, codec, crop) batch goes to the cache (cache.py); a rerun skips
whatever is there. Sharding: under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) rank r takes images
r, r + W, ...; after a gloo barrier rank 0 reads every rank's cache and writes results.csv,
summary.json and the plots (summary.py).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from odic.codecs import BenchCodec, CodecUnavailable, codec_from_spec, parse_codec_spec

from .cache import Cache, codec_fingerprint, ref_key, row_key
from .config import BenchConfig, BenchError
from .datasets import Dataset, Item
from .metrics import msssim, psnr
from .protocol import classify_top5, crop_groups, measure, reference_crop
from .summary import REFERENCE_CODEC, write_outputs


def codec_label(spec: str) -> str:
    """Canonical name of a codec spec: its name and options, without the settings list."""
    name, opts = parse_codec_spec(spec)
    opts.pop("settings", None)
    return ":".join([name] + [f"{k}={_fmt(v)}" for k, v in sorted(opts.items())])


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return "/".join(_fmt(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_codecs(specs: Iterable[str], add_reference: bool = True) -> tuple[dict[str, BenchCodec], dict[str, str]]:
    """Create the codecs; unavailable ones are skipped with their reason, bad specs raise BenchError."""
    codecs: dict[str, BenchCodec] = {}
    skipped: dict[str, str] = {}
    specs = [s for s in specs if s.strip()]
    labels = [codec_label(s) for s in specs]
    if add_reference and REFERENCE_CODEC not in labels:
        specs.append(REFERENCE_CODEC)
    for spec in specs:
        label = codec_label(spec)
        if label in codecs or label in skipped:
            continue
        try:
            codecs[label] = codec_from_spec(spec)
        except CodecUnavailable as exc:
            skipped[label] = str(exc)
        except (KeyError, TypeError, ValueError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise BenchError(f"codec '{spec}': {msg}") from None
    return codecs, skipped


def build_observers(names: Iterable[str], device: str) -> dict[str, torch.nn.Module]:
    """Create the classifiers by name; unknown or uninstalled ones raise BenchError."""
    from odic.observers import ObserverUnavailable, create_observer

    out = {}
    for name in names:
        try:
            out[name] = create_observer(name, device=device)
        except KeyError as exc:
            raise BenchError(exc.args[0]) from None
        except ObserverUnavailable as exc:
            raise BenchError(f"classifier '{name}': {exc}") from None
    return out


def _dist() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; initialises gloo when world size > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
    return rank, world


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _progress(enabled: bool):  # noqa: ANN202 - rich Progress or a stand-in
    if enabled:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), transient=False)

    class _Null:
        def __enter__(self):  # noqa: ANN204
            return self

        def __exit__(self, *a: object) -> None:
            pass

        def add_task(self, *a: object, **k: object) -> int:
            return 0

        def advance(self, *a: object, **k: object) -> None:
            pass

    return _Null()


def _sweep_image(ds: Dataset, item: Item, crop: int | None, clfs: list[str], codecs: dict[str, BenchCodec],
                 observers: dict[str, torch.nn.Module], cache: Cache, original: Image.Image) -> None:
    """All codecs and settings for one image at one crop size; rows go to the cache."""
    image = reference_crop(original, crop) if crop else original
    refs: dict[str, list[int]] = {}
    new_refs = []
    for clf in clfs:
        key = ref_key(ds.name, item.key, clf, crop)
        if key not in cache.refs:
            top5 = classify_top5(observers[clf], [image], observers[clf].spec.input_size)[0]
            new_refs.append({"key": key, "dataset": ds.name, "image": item.key, "classifier": clf,
                             "crop": crop, "label": item.label, "top5": top5})
            cache.refs[key] = new_refs[-1]
        refs[clf] = cache.refs[key]["top5"]
    if new_refs:
        cache.add("refs", new_refs)
    pixels = image.width * image.height
    for label, codec in codecs.items():
        fp = codec_fingerprint(codec)
        todo = [s for s in codec.settings if cache.row(row_key(ds.name, item.key, label, s, crop), fp) is None]
        if not todo:
            continue
        rows, decoded = [], []
        for s in todo:
            try:
                m = measure(codec, image, s)
            except Exception as exc:  # noqa: BLE001 - one failing setting must not stop a long run
                warnings.warn(f"{label} setting {s:g} on {item.key}: {exc}", stacklevel=1)
                continue
            rows.append({
                "key": row_key(ds.name, item.key, label, s, crop), "dataset": ds.name, "image": item.key,
                "codec": label, "codec_name": codec.name, "codec_id": fp, "setting": float(s), "crop": crop,
                "width": image.width, "height": image.height, "bytes": len(m.data),
                "header_bytes": codec.header_bytes(m.data), "bpp": len(m.data) * 8 / pixels,
                "psnr": psnr(image, m.decoded), "ms_ssim": msssim(image, m.decoded),
                "encode_s": m.encode_s, "decode_s": m.decode_s, "peak_mem_mb": m.peak_mem_mb,
                "label": item.label,
            })
            decoded.append(m.decoded)
        for clf in clfs:
            preds = classify_top5(observers[clf], decoded, observers[clf].spec.input_size)
            for row, top5 in zip(rows, preds, strict=True):
                row[f"agree/{clf}"] = float(top5[0] == refs[clf][0])
                if item.label is not None:
                    row[f"top1/{clf}"] = float(top5[0] == item.label)
                    row[f"top5/{clf}"] = float(item.label in top5)
                row[f"pred/{clf}"] = top5
        cache.add("rows", rows)


def run_bench(cfg: BenchConfig) -> dict[str, Any] | None:
    """Run (or resume) the benchmark; rank 0 returns the summary, other ranks None."""
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    if not cfg.datasets:
        raise BenchError("no dataset given (use --data NAME=DIR)")
    codecs, skipped = build_codecs(cfg.codecs, cfg.add_reference)
    rank, world = _dist()
    for label, why in skipped.items():
        if rank == 0:
            _log(f"odic bench: skipping {label} ({why})")
    if not codecs:
        raise BenchError("none of the requested codecs is available")
    observers = build_observers(cfg.classifiers, cfg.device)
    out = Path(cfg.out)
    cache = Cache(out / "cache", rank)
    with _progress(cfg.progress and rank == 0) as progress:
        for ds in cfg.datasets:
            items = ds.items[: cfg.limit] if cfg.limit else ds.items
            shard = items[rank::world]
            groups = crop_groups(ds, observers)
            task = progress.add_task(f"{ds.name} (rank {rank}/{world})", total=len(shard) * len(groups))
            for item in shard:
                original: Image.Image | None = None
                for crop, clfs in groups.items():
                    if _done(ds, item, crop, clfs, codecs, cache):
                        progress.advance(task)
                        continue
                    if original is None:
                        try:
                            original = item.load()
                        except OSError as exc:
                            raise BenchError(f"{ds.name}: cannot read {item.key}: {exc}") from None
                    _sweep_image(ds, item, crop, clfs, codecs, observers, cache, original)
                    progress.advance(task)
    _barrier(world)
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    if rank != 0:
        return None
    cache.reload()
    return write_outputs(cfg, codecs, skipped, observers, cache, world)


def _done(ds: Dataset, item: Item, crop: int | None, clfs: list[str], codecs: dict[str, BenchCodec],
          cache: Cache) -> bool:
    """True when every row and reference output of this image and crop is already cached."""
    if any(ref_key(ds.name, item.key, c, crop) not in cache.refs for c in clfs):
        return False
    return all(cache.row(row_key(ds.name, item.key, label, s, crop), codec_fingerprint(codec)) is not None
               for label, codec in codecs.items() for s in codec.settings)
