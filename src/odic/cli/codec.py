"""``odic compress``, ``odic decompress`` and ``odic info``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..options import DEFAULT_CLASSIFIER
from . import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, UsageError, fail

if TYPE_CHECKING:
    from ..observers import Observer

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm"}
OUTPUT_FORMATS = {".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jpg", ".jpeg"}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="installed model name or weights file (default: the bundled odic-base)")
    p.add_argument("--device", default="cpu", help="torch device for the transforms, e.g. cpu, cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images larger than N pixels (default: 256000000), a decompression-bomb guard")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def register(sub) -> None:
    c = sub.add_parser(
        "compress", help="compress images to .odic",
        description="Compress images (files or folders) to .odic streams.",
        epilog="Give one of --quality, --bpp, --size. Example: odic compress photo.png --bpp 0.25 --observer machine",
    )
    c.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders of images")
    c.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input) or folder (several); default: IN with suffix .odic")
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=float, default=None, metavar="Q",
                      help="quality 0 (smallest) .. 100 (best), continuous (default: 50)")
    rate.add_argument("--bpp", type=float, default=None, metavar="BPP",
                      help="target bits per pixel of the whole file; quality is searched to hit it")
    rate.add_argument("--size", type=int, default=None, metavar="BYTES",
                      help="largest file size in bytes; the best quality that fits is used")
    c.add_argument("--observer", default="human", metavar="A",
                   help="who looks at the image: human (=0), machine (=1) or a mix in [0, 1] (default: human)")
    c.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="fit each image's latents to the observer in STEPS optimisation steps: smaller files "
                        "or better quality, same decoder, ~0.6 s per step for 768x512 on 2 cores (default: 0)")
    c.add_argument("--refine-classifier", default=DEFAULT_CLASSIFIER, metavar="NAME|PKG.MOD:FACTORY",
                   help="classifier that scores a machine share while refining: a registered name, an installed "
                        "package's odic.observers entry point, or your own model as package.module:factory "
                        f"(a callable returning a torch.nn.Module; docs/api.md) (default: {DEFAULT_CLASSIFIER})")
    c.add_argument("--refine-shift", type=int, default=None, metavar="PX",
                   help="score a machine share on random views shifted by up to PX pixels and mirrored while "
                        "refining, so the latents fit what classifiers share (default: 8; 0 turns the views off)")
    c.add_argument("--tile", type=int, default=None, metavar="PX",
                   help="code in tiles of PX pixels (multiple of 64); default: 1024 above 4 megapixels, else none")
    _add_common(c)
    c.set_defaults(func=run_compress)

    d = sub.add_parser("decompress", help="decode .odic streams to images",
                       description="Decode .odic streams; the output format follows the suffix (default .png).")
    d.add_argument("inputs", nargs="+", metavar="IN.odic", help=".odic files or folders of them")
    d.add_argument("-o", "--output", metavar="OUT",
                   help="output file (one input) or folder (several); default: IN with suffix .png")
    _add_common(d)
    d.set_defaults(func=run_decompress)

    i = sub.add_parser("info", help="print the header of .odic files as JSON")
    i.add_argument("inputs", nargs="+", metavar="IN.odic")
    i.set_defaults(func=run_info)


def _expand(inputs: list[str], suffixes: set[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise UsageError(f"{p}: no matching files in folder")
            files.extend(found)
        else:
            files.append(p)
    return files


def _targets(files: list[Path], output: str | None, suffix: str) -> list[Path]:
    if output is None:
        return [f.with_suffix(suffix) for f in files]
    out = Path(output)
    if len(files) == 1 and not out.is_dir() and not output.endswith(("/", "\\")):
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    names = [f.stem + suffix for f in files]
    if len(set(names)) != len(names):
        raise UsageError("several inputs share a name; give them separate output folders")
    return [out / n for n in names]


def _configure(args) -> None:
    if args.max_pixels is not None:
        from ..imageio import set_max_pixels

        set_max_pixels(args.max_pixels)


def _run_batch(files, targets, work, quiet: bool, parallel: bool = False) -> int:
    """Run ``work(src, dst)`` per file; report failures by name and keep going.

    ``parallel``: several files at once, one thread each (``odic.parallel``), reported in order.
    """
    progress = None
    if not quiet and len(files) > 1 and sys.stderr.isatty():
        from rich.progress import Progress

        progress = Progress(transient=True)
        progress.start()
        task = progress.add_task("odic", total=len(files))

    def attempt(pair: tuple[Path, Path]) -> tuple[str | None, BaseException | None]:
        src, dst = pair
        try:
            if dst.resolve() == src.resolve():
                raise FileExistsError(f"{dst}: output would overwrite the input")
            return work(src, dst), None
        except Exception as exc:  # noqa: BLE001 - every failure is reported by file name
            return None, exc
        finally:
            if progress:
                progress.advance(task)

    pairs = list(zip(files, targets, strict=True))
    try:
        if parallel:
            from ..parallel import map_single_threaded

            results = map_single_threaded(attempt, pairs)
        else:
            results = map(attempt, pairs)
        failures = 0
        for (src, _dst), (msg, exc) in zip(pairs, results, strict=True):
            if exc is not None:
                failures += 1
                fail(f"{src}: {_one_line(exc)}")
            elif msg and not quiet:
                print(msg)
    finally:
        if progress:
            progress.stop()
    if failures == 0:
        return EXIT_OK
    return EXIT_FAILED if failures == len(files) else EXIT_PARTIAL


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.strip("'\"") if isinstance(exc, KeyError) else text


def run_compress(args) -> int:
    import odic

    from ..fileio import write_bytes_atomic
    from ..options import MAX_REFINE_SHIFT, MAX_REFINE_STEPS, parse_observer

    _configure(args)
    try:
        observer = parse_observer(args.observer)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.quality is not None and not 0 <= args.quality <= 100:
        raise UsageError(f"--quality must be in [0, 100], got {args.quality}")
    if args.bpp is not None and not args.bpp > 0:
        raise UsageError(f"--bpp must be positive, got {args.bpp}")
    if args.size is not None and args.size <= 0:
        raise UsageError(f"--size must be positive, got {args.size}")
    if not 0 <= args.refine <= MAX_REFINE_STEPS:
        raise UsageError(f"--refine must be from 0 to {MAX_REFINE_STEPS} steps, got {args.refine}")
    if args.refine_shift is not None and not 0 <= args.refine_shift <= MAX_REFINE_SHIFT:
        raise UsageError(f"--refine-shift must be from 0 to {MAX_REFINE_SHIFT} pixels, got {args.refine_shift}")
    refine_classifier = args.refine_classifier
    if args.refine and observer > 0:  # built once, before any file: every image uses this one
        refine_classifier = load_classifier("--refine-classifier", args.refine_classifier, args.device)
    files = _expand(args.inputs, IMAGE_SUFFIXES)
    targets = _targets(files, args.output, ".odic")
    codec = odic.load(args.model, device=args.device, threads=args.threads)

    def work(src: Path, dst: Path) -> str:
        if dst.exists() and not args.force:
            raise FileExistsError(f"{dst}: exists (use --force to overwrite)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            data = codec.compress(src, quality=args.quality, observer=observer, bpp=args.bpp,
                                  size_bytes=args.size, tile=args.tile, refine=args.refine,
                                  refine_classifier=refine_classifier, refine_shift=args.refine_shift)
        for w in caught:
            print(f"odic: warning: {w.message}", file=sys.stderr)
        write_bytes_atomic(dst, data, force=args.force)
        info = codec.info(data)
        return f"{src} -> {dst}: {info['bytes']} bytes, {info['bpp']:.4f} bpp"

    return _run_batch(files, targets, work, args.quiet)


def import_from_cwd() -> None:
    """Let a ``package.module:factory`` argument name a module in the current folder, as under ``python -m``.

    Appended, so an installed package is never shadowed by a folder of the same name.
    """
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def load_classifier(flag: str, name: str, device: str) -> Observer:
    """The observer ``name`` on ``device`` (a registered name, an entry point or ``package.module:factory``).

    An unknown name, a path that does not import, a factory that fails or returns no module, or an
    output of the wrong shape is a usage error naming ``flag``; missing weights are not (exit 1).
    """
    from ..observers import create_observer

    import_from_cwd()
    try:
        return create_observer(name, device)
    except KeyError as exc:  # create_observer's message names the known observers
        raise UsageError(f"{flag}: {exc.args[0]}") from None
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def run_decompress(args) -> int:
    import odic

    from ..fileio import atomic_write

    _configure(args)
    files = _expand(args.inputs, {".odic"})
    targets = _targets(files, args.output, ".png")
    for t in targets:
        if t.suffix.lower() not in OUTPUT_FORMATS:
            raise UsageError(f"{t}: unsupported output format '{t.suffix}' (use .png, .bmp, .tif, .webp, .ppm)")
    codec = odic.load(args.model, device=args.device, threads=args.threads)

    def work(src: Path, dst: Path) -> str:
        if dst.exists() and not args.force:
            raise FileExistsError(f"{dst}: exists (use --force to overwrite)")
        img = codec.decompress(src.read_bytes())
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF"}.get(dst.suffix.lower())
        if fmt == "JPEG" and img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        atomic_write(dst, lambda tmp: img.save(tmp, format=fmt or dst.suffix[1:].upper()), force=args.force)
        return f"{src} -> {dst}: {img.width}x{img.height} {img.mode}"

    return _run_batch(files, targets, work, args.quiet, parallel=True)


def run_info(args) -> int:
    from ..api import Codec

    failures = 0
    for name in args.inputs:
        try:
            print(json.dumps({"file": name, **Codec.info(Path(name).read_bytes())}, indent=2))
        except Exception as exc:  # noqa: BLE001
            failures += 1
            fail(f"{name}: {_one_line(exc)}")
    if failures == 0:
        return EXIT_OK
    return EXIT_FAILED if failures == len(args.inputs) else EXIT_PARTIAL
