"""The ``odic`` command. Each subcommand lives in its own module with ``register(subparsers)``.

Exit codes: 0 every file succeeded; 1 every file failed (or the single job failed); 2 usage error;
3 some files failed, the others were written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# Subcommand modules, in the order `odic --help` lists them.
SUBCOMMANDS = ["codec", "models", "train", "bench", "report"]


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(
        prog="odic",
        description="Observer-dependent learned image codec: small files for human eyes, machine eyes, or both.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage error, 3 some files failed, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"odic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # subcommand not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("odic: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"odic: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        print(f"odic: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


class UsageError(Exception):
    """Bad combination of arguments: exit code 2."""


def fail(message: str) -> None:
    print(f"odic: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
