"""``napari-restore info``: versions and the compute devices torch sees."""

from __future__ import annotations

import argparse
import platform


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions and available compute devices")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from napari_restore._version import __version__
    from napari_restore.core.device import available_devices, describe_device, resolve_device

    python = platform.python_version()
    print(f"napari-restore {__version__}, torch {torch.__version__}, Python {python}")
    print("devices:", ", ".join(available_devices()))
    print("auto picks:", describe_device(resolve_device("auto")))
    return 0
