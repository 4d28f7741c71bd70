"""``odic models``: the installed models, the name to pass to ``--model`` and what each is for."""

from __future__ import annotations

import argparse
import json

from . import EXIT_OK


def register(sub) -> None:  # noqa: ANN001 - argparse's private subparsers type
    """Add the ``models`` subcommand."""
    p = sub.add_parser(
        "models", help="list the installed models (names for --model)",
        description="List the models installed with odic: the name that --model and odic.load() take, the id "
                    "written into every stream, training steps, size and what the model is for. Streams "
                    "written by any installed model decode without naming it.",
        epilog="Example: odic models; odic compress photo.png --model odic-people",
    )
    p.add_argument("--json", action="store_true", help="one JSON list instead of the table")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    """Handler of ``odic models``."""
    from ..weights import list_models

    infos = list_models()
    if args.json:
        rows = [{"name": i.name, "model_id": i.model_id, "steps": i.steps, "default": i.default,
                 "size_bytes": i.size_bytes, "summary": i.summary} for i in infos]
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    width = max(len(i.name) for i in infos) + 2
    for i in infos:
        mark = " (default)" if i.default else ""
        print(f"{i.name:<{width}}{i.model_id}{mark}, {i.size_bytes / 1e6:.1f} MB")
        if i.summary:
            print(f"{'':<{width}}{i.summary}")
    return EXIT_OK
