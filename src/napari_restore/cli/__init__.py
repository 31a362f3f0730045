"""``napari-restore`` command line: one subcommand module per capability.

Each module in this package defines ``register(subparsers)``, which adds its subcommand and sets
``func`` (called with the parsed arguments, returns an exit code). Errors meant for users
(:class:`~napari_restore.errors.RestoreInputError`), files that cannot be read or written
(:class:`OSError`, e.g. permissions) and memory running out are printed as one line without a
traceback and exit with code 2; Ctrl-C exits with 130 and leaves no partial output file (a
folder output keeps the planes it has finished, and running the command again resumes it).
Subcommands with ``--recursive`` run once per folder of planes of an input tree
(:func:`._common.run_tree`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from napari_restore._version import __version__
from napari_restore.errors import RestoreInputError

SUBCOMMAND_MODULES = ("demo", "simulate", "metrics", "destripe", "denoise", "info")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="napari-restore",
        description="Remove stripes and noise from fluorescence microscopy images "
        "(the engine of the napari-restore plugin, without a GUI).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"napari_restore.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-restore`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "recursive", False):
            from napari_restore.cli._common import run_tree

            return run_tree(args)
        return int(args.func(args) or 0)
    except RestoreInputError as err:
        print(f"napari-restore {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file that cannot be read or written (permissions, full disk)
        print(f"napari-restore {args.command}: error: {_os_error_text(err)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            f"napari-restore {args.command}: error: out of memory; use a smaller image, tile, "
            "or batch size.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        from napari_restore.io_folders import folder_state

        output = getattr(args, "output", None)
        if getattr(args, "recursive", False) or (
            output is not None and folder_state(output) == "partial"
        ):
            said = "finished planes are kept; run the same command again to resume"
        else:
            said = "no output was written"
        print(f"napari-restore {args.command}: interrupted; {said}.", file=sys.stderr)
        return 130


def _os_error_text(err: OSError) -> str:
    """One line for an :class:`OSError`: what failed, on which file, and what to do."""
    what = err.strerror or str(err) or type(err).__name__
    where = f" ({err.filename})" if err.filename else ""
    hint = ""
    if isinstance(err, PermissionError):
        hint = "; check the file and folder permissions, or choose another path"
    return f"{what}{where}{hint}."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
