"""napari reader: a folder of 2D TIFF planes opens as one lazy (Z, Y, X) image layer.

Other folders (zarr stores, folders without TIFF files) are left to other readers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | os.PathLike[str] | list[Any]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_plane_folder` if ``path`` is a folder of TIFF planes, else ``None``.

    Parameters
    ----------
    path : path-like or list of one path
        What napari was asked to open.
    """
    from napari_restore.io_folders import TIFF_SUFFIXES, is_plane_folder_input

    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if not is_plane_folder_input(p) or not p.is_dir():
        return None
    if not any(f.suffix.lower() in TIFF_SUFFIXES for f in p.iterdir() if f.is_file()):
        return None
    return read_plane_folder


def read_plane_folder(path: str | os.PathLike[str] | list[Any]) -> list[LayerData]:
    """Open a folder of 2D TIFF planes as one image layer backed by a dask array.

    Planes are read from disk only when napari displays them (one file per plane). Folders with
    planes of different shape or dtype are refused with the offending file named.

    Parameters
    ----------
    path : path-like or list of one path
        The folder.

    Returns
    -------
    list of (data, metadata, layer type)
    """
    from napari_restore.io_folders import open_plane_folder

    if isinstance(path, list):
        path = path[0]
    p = Path(path)
    stack = open_plane_folder(p)  # RestoreInputError (a ValueError) names a mismatched plane
    meta = {
        "name": p.name,
        "metadata": {"source_folder": str(p), "plane_files": stack.names},
    }
    return [(stack.to_dask(), meta, "image")]
