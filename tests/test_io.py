"""Reading and writing: formats, lazy access, atomic writes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_restore.errors import RestoreInputError
from napari_restore.io import PlaneWriter, open_image, read_image, write_image


@pytest.mark.parametrize("name", ["a.tif", "a.zarr", "a.ome.zarr", "a.npy"])
def test_round_trip(tmp_path, rng, name):
    data = (rng.random((3, 20, 30)) * 1000).astype(np.uint16)
    path = write_image(tmp_path / name, data)
    np.testing.assert_array_equal(read_image(path), data)
    lazy = open_image(path)
    assert lazy.shape == data.shape
    np.testing.assert_array_equal(np.asarray(lazy[1]), data[1])
    assert [p.name for p in tmp_path.iterdir()] == [name], "no temporary files left"


def test_uncompressed_tiff_is_memory_mapped_and_compressed_read_lazily(tmp_path, rng):
    data = rng.random((4, 16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / "raw.tif", data, photometric="minisblack")
    assert isinstance(open_image(tmp_path / "raw.tif"), np.memmap)
    write_image(tmp_path / "zip.tif", data)  # zlib-compressed
    lazy = open_image(tmp_path / "zip.tif")
    assert not isinstance(lazy, np.ndarray)
    np.testing.assert_array_equal(lazy[2], data[2])


def test_plane_writer_is_atomic(tmp_path):
    out = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), PlaneWriter(out, (3, 8, 8), np.uint8) as w:
        w[0] = np.ones((8, 8), np.uint8)
        raise RuntimeError("crash half-way")
    assert list(tmp_path.iterdir()) == []
    with PlaneWriter(out, (3, 8, 8), np.uint8) as w:
        for z in range(3):
            w[z] = np.full((8, 8), z, np.uint8)
    np.testing.assert_array_equal(read_image(out)[:, 0, 0], [0, 1, 2])


def test_grey_png_accepted_colour_refused(tmp_path, rng):
    import imageio.v3 as iio

    grey = (rng.random((20, 20)) * 200).astype(np.uint8)
    near_grey = np.stack([grey, grey + 1, grey, np.full_like(grey, 255)], axis=-1)
    iio.imwrite(tmp_path / "grey.png", near_grey)
    out = read_image(tmp_path / "grey.png")
    assert out.shape == (20, 20) and np.abs(out.astype(int) - grey).max() <= 1
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    iio.imwrite(tmp_path / "colour.png", colour)
    with pytest.raises(RestoreInputError, match="colour image"):
        read_image(tmp_path / "colour.png")


def test_errors(tmp_path):
    with pytest.raises(RestoreInputError, match="File not found"):
        read_image(tmp_path / "missing.tif")
    (tmp_path / "broken.tif").write_bytes(b"this is not a tiff")
    with pytest.raises(RestoreInputError, match="Could not read"):
        read_image(tmp_path / "broken.tif")
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(RestoreInputError, match="Unsupported file type"):
        read_image(tmp_path / "x.xyz")
    with pytest.raises(RestoreInputError, match="Cannot write"):
        write_image(tmp_path / "out.jpg", np.zeros((4, 4)))
