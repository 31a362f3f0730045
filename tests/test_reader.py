"""The plugin's reader opens a folder of TIFF planes lazily in a real napari viewer."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_restore._reader import get_reader


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, np.ndarray]:
    stack = np.random.default_rng(7).integers(0, 60000, (11, 30, 40), dtype=np.uint16)
    path = tmp_path / "tile_x000_y000"
    path.mkdir()
    for z, plane in enumerate(stack):
        tifffile.imwrite(path / f"plane_z{z}.tif", plane)
    return path, stack


def test_viewer_opens_a_folder_as_one_lazy_layer(make_napari_viewer, folder) -> None:
    path, stack = folder
    viewer = make_napari_viewer()
    layers = viewer.open(path, plugin="napari-restore")
    assert len(layers) == 1 and len(viewer.layers) == 1
    layer = viewer.layers[0]
    assert layer.name == "tile_x000_y000"
    assert isinstance(layer.data, da.Array)
    assert layer.data.shape == (11, 30, 40) and layer.data.dtype == np.uint16
    # plane_z10 comes after plane_z9 (natural sort), and each plane holds its file's pixels.
    assert layer.metadata["plane_files"][-2:] == ["plane_z9.tif", "plane_z10.tif"]
    viewer.dims.set_point(0, 10)
    np.testing.assert_array_equal(np.asarray(layer.data[10]), stack[10])
    np.testing.assert_array_equal(layer.data.compute(), stack)


def test_reader_declines_what_is_not_a_plane_folder(tmp_path: Path, folder) -> None:
    path, _ = folder
    assert get_reader(str(path)) is not None
    assert get_reader([str(path)]) is not None
    assert get_reader(str(path / "plane_z0.tif")) is None  # single files: other readers
    assert get_reader([str(path), str(path)]) is None
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "empty")) is None
    zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(2, 2), dtype="u1")
    assert get_reader(str(tmp_path / "a.zarr")) is None


def test_mismatched_planes_are_refused_naming_the_file(make_napari_viewer, folder) -> None:
    path, stack = folder
    tifffile.imwrite(path / "plane_z4.tif", stack[4].astype(np.float32))
    viewer = make_napari_viewer()
    with pytest.raises(ValueError, match=r"plane_z4\.tif"):
        viewer.open(path, plugin="napari-restore")
    assert len(viewer.layers) == 0
