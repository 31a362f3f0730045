"""Folders of 2D TIFF planes: opening them as lazy stacks, and writing and resuming them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_restore.errors import RestoreInputError
from napari_restore.io import PlaneWriter, open_image, read_image, write_image
from napari_restore.io_folders import (
    COMPLETE_MARKER,
    PROGRESS_MARKER,
    TiffPlaneStack,
    check_output,
    folder_state,
    plane_folders,
)


def write_planes(folder: Path, stack: np.ndarray, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, plane in zip(names, stack, strict=True):
        tifffile.imwrite(folder / name, plane)


@pytest.fixture
def stack(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 4000, (12, 24, 20), dtype=np.uint16)


@pytest.fixture
def folder(tmp_path: Path, stack: np.ndarray) -> Path:
    path = tmp_path / "planes"
    write_planes(path, stack, [f"img_z{z}.tif" for z in range(len(stack))])
    return path


def test_folder_opens_as_a_stack_in_natural_order(folder: Path, stack: np.ndarray) -> None:
    image = open_image(folder)
    assert isinstance(image, TiffPlaneStack)
    assert image.shape == stack.shape and image.dtype == np.uint16 and image.ndim == 3
    # z9 before z10 (a plain string sort puts img_z10 and img_z11 after img_z1).
    assert image.names[8:] == ["img_z8.tif", "img_z9.tif", "img_z10.tif", "img_z11.tif"]
    np.testing.assert_array_equal(read_image(folder), stack)
    np.testing.assert_array_equal(image[10], stack[10])
    np.testing.assert_array_equal(image[-1, 3:9, ::4], stack[-1, 3:9, ::4])
    np.testing.assert_array_equal(image[2:9:3, :, 5], stack[2:9:3, :, 5])
    np.testing.assert_array_equal(image[[11, 0]], stack[[11, 0]])
    np.testing.assert_array_equal(image[..., 7], stack[..., 7])
    assert image[5:5].shape == (0, 24, 20)
    with pytest.raises(IndexError):
        image[12]


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_patches_read_the_same_from_plain_and_compressed_planes(
    tmp_path: Path, stack: np.ndarray, compression: str | None
) -> None:
    folder = tmp_path / "planes"
    folder.mkdir()
    for z, plane in enumerate(stack):
        tifffile.imwrite(folder / f"{z}.tif", plane, compression=compression)
    image = open_image(folder)
    # A patch of an uncompressed plane comes through a memory map, of a compressed one from
    # the decoded plane: same values either way, as an independent copy.
    patch = image[3:7, 5:13, 2:9]
    np.testing.assert_array_equal(patch, stack[3:7, 5:13, 2:9])
    assert not isinstance(patch, np.memmap) and patch.flags.writeable
    np.testing.assert_array_equal(image[4, 10, ::3], stack[4, 10, ::3])


def test_planes_are_read_only_when_indexed(folder: Path, stack: np.ndarray) -> None:
    image = open_image(folder)
    (folder / "img_z7.tif").unlink()  # after opening: only reading plane 7 can notice
    np.testing.assert_array_equal(image[6], stack[6])
    np.testing.assert_array_equal(image.to_dask()[8:10].compute(), stack[8:10])
    with pytest.raises(RestoreInputError, match=r"img_z7\.tif"):
        image[7]


def test_glob_pattern_picks_files(tmp_path: Path, stack: np.ndarray) -> None:
    folder = tmp_path / "tile"
    names = [f"{c}_z{z}.tiff" for z in range(6) for c in ("C00", "C01")]
    write_planes(folder, stack, names)
    (folder / "notes.txt").write_text("not an image")
    image = open_image(folder / "C01_*.tiff")
    assert image.names == [f"C01_z{z}.tiff" for z in range(6)]
    np.testing.assert_array_equal(image[...], stack[1::2])
    assert open_image(folder).shape == (12, 24, 20)  # the text file is not a plane
    with pytest.raises(RestoreInputError, match="No TIFF files matching 'C02_"):
        open_image(folder / "C02_*.tif")


@pytest.mark.parametrize(
    ("odd", "what"),
    [
        (np.zeros((24, 21), np.uint16), r"shape \(24, 21\)"),
        (np.zeros((24, 20), np.float32), "dtype float32"),
        (np.zeros((2, 24, 20), np.uint16), r"array of shape \(2, 24, 20\)"),
    ],
)
def test_mismatched_planes_are_refused_naming_the_file(
    folder: Path, odd: np.ndarray, what: str
) -> None:
    tifffile.imwrite(folder / "img_z5.tif", odd)
    with pytest.raises(RestoreInputError, match=rf"img_z5.tif.*{what}"):
        open_image(folder)


def test_missing_and_empty_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RestoreInputError, match="Folder not found"):
        open_image(tmp_path / "nope" / "*.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RestoreInputError, match="No TIFF files"):
        open_image(tmp_path / "empty")


def test_folder_output_uses_the_input_names_and_dtype(
    folder: Path, stack: np.ndarray, tmp_path: Path
) -> None:
    image = open_image(folder)
    out = tmp_path / "out"
    with PlaneWriter(out, image.shape, np.uint16, source=image) as writer:
        assert folder_state(out) == "partial"  # being written
        for (z,) in writer.pending():
            writer[z] = image[z] // 2
    assert folder_state(out) == "complete"
    assert sorted(p.name for p in out.iterdir()) == sorted([*image.names, COMPLETE_MARKER])
    assert tifffile.imread(out / "img_z10.tif").dtype == np.uint16
    np.testing.assert_array_equal(open_image(out)[...], stack // 2)
    meta = json.loads((out / COMPLETE_MARKER).read_text())
    assert meta["shape"] == [12, 24, 20] and meta["planes"][10] == "img_z10.tif"


def test_folder_output_without_folder_input_numbers_planes(tmp_path: Path) -> None:
    data = np.arange(3 * 2 * 4 * 5, dtype=np.float32).reshape(3, 2, 4, 5)
    write_image(tmp_path / "four_d", data)
    names = sorted(p.name for p in (tmp_path / "four_d").glob("*.tif"))
    assert names[:3] == ["plane_0_00000.tif", "plane_0_00001.tif", "plane_1_00000.tif"]
    # Written as slabs of frames, as the denoiser does: same planes.
    with PlaneWriter(tmp_path / "slabs", data.shape, data.dtype) as writer:
        writer[:, 0:2] = data[:, 0:2]
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "slabs" / "plane_2_00001.tif"), data[2, 1]
    )


def test_interrupted_output_is_resumed_skipping_finished_planes(
    folder: Path, stack: np.ndarray, tmp_path: Path
) -> None:
    image = open_image(folder)
    out = tmp_path / "out"
    with (
        pytest.raises(KeyboardInterrupt),
        PlaneWriter(out, image.shape, image.dtype, source=image) as w,
    ):
        for z in range(5):
            w[z] = image[z]
        raise KeyboardInterrupt  # Ctrl-C between planes
    assert folder_state(out) == "partial"
    assert not any(p.name.endswith(".part") for p in out.iterdir())
    # A half-written plane (a temporary file, never renamed) does not count as written.
    (out / ".img_z5.tif.999.part").write_bytes(b"II*\x00 truncated")
    before = {z: (out / image.names[z]).stat().st_mtime_ns for z in range(5)}
    with pytest.raises(RestoreInputError, match="unfinished napari-restore output"):
        open_image(out)  # not a finished stack yet

    check_output(out, overwrite=False)  # an unfinished folder is not refused: it resumes
    with PlaneWriter(out, image.shape, image.dtype, source=image) as w:
        assert [z for (z,) in w.pending()] == list(range(5, 12))
        w[0] = np.zeros((24, 20), np.uint16)  # finished planes are not written again
        for (z,) in w.pending():
            w[z] = image[z]
    assert folder_state(out) == "complete"
    assert not (out / ".img_z5.tif.999.part").exists()  # the killed run's leftover is gone
    assert {z: (out / image.names[z]).stat().st_mtime_ns for z in range(5)} == before
    np.testing.assert_array_equal(open_image(out)[...], stack)
    with pytest.raises(RestoreInputError, match="pass --overwrite"):
        check_output(out, overwrite=False)


def test_resuming_another_image_is_refused(folder: Path, tmp_path: Path) -> None:
    image = open_image(folder)
    out = tmp_path / "out"
    with (
        pytest.raises(KeyboardInterrupt),
        PlaneWriter(out, image.shape, image.dtype, source=image) as w,
    ):
        w[0] = image[0]
        raise KeyboardInterrupt
    with (
        pytest.raises(RestoreInputError, match="unfinished output of another image"),
        PlaneWriter(out, image.shape, np.float32, source=image),
    ):
        pass
    # --overwrite starts it again from the first plane.
    check_output(out, overwrite=True)
    with PlaneWriter(out, image.shape, np.float32, source=image) as w:
        assert len(w.pending()) == 12
        w[...] = np.asarray(image, np.float32)
    assert open_image(out).dtype == np.float32


def test_existing_outputs_need_overwrite(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(RestoreInputError, match="pass --overwrite"):
        check_output(folder, overwrite=False)  # a folder with other content
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", overwrite=False)
    (tmp_path / "file.tif").write_bytes(b"x")
    with pytest.raises(RestoreInputError, match="pass --overwrite"):
        check_output(tmp_path / "file.tif", overwrite=False)


def test_unwritten_planes_leave_the_folder_unfinished(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="1 of 2 planes were never written"),
        PlaneWriter(tmp_path / "out", (2, 4, 4), np.uint8) as w,
    ):
        w[0] = np.ones((4, 4), np.uint8)
    assert folder_state(tmp_path / "out") == "partial"
    assert (tmp_path / "out" / PROGRESS_MARKER).exists()


def test_plane_folders_of_a_tile_tree(tmp_path: Path, stack: np.ndarray) -> None:
    root = tmp_path / "root"
    for tile in ("x2/y10", "x2/y9", "x10/y1", "x2/.hidden"):
        write_planes(root / tile, stack[:2], ["z1.tif", "z2.tif"])
    (root / "x2" / "readme.txt").parent.mkdir(exist_ok=True)
    (root / "x2" / "readme.txt").write_text("no planes here")
    found = [p.relative_to(root).as_posix() for p in plane_folders(root)]
    assert found == ["x2/y9", "x2/y10", "x10/y1"]
