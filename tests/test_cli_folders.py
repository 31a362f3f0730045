"""Folders of TIFF planes through the command line: same results as one stack file, resume after
an interruption, trees of tiles with ``--recursive``, and the error cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_restore.cli import main
from napari_restore.io import open_image
from napari_restore.io_folders import COMPLETE_MARKER, FolderPlaneWriter, folder_state
from napari_restore.simulate.stripes import StripeParams, simulate_stripes

DESTRIPE = ["--device", "cpu", "--threads", "1", "-q"]


def cli(*args: object) -> int:
    return main([str(a) for a in args])


def striped_stack(seed: int, planes: int = 6) -> np.ndarray:
    """Smooth blobs with horizontal stripes, uint16, ``(planes, 48, 64)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :64]
    clean = np.zeros((planes, 48, 64))
    for z in range(planes):
        for _ in range(4):
            cy, cx, r = rng.uniform(0, 48), rng.uniform(0, 64), rng.uniform(4, 10)
            clean[z] += 800 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    clean += 200
    params = StripeParams(kind="gaussian", amplitude=(0.3, 0.5), seed=seed)
    striped = simulate_stripes(clean, params).image
    return np.clip(striped, 0, 65535).astype(np.uint16)


def as_folder(path: Path, stack: np.ndarray) -> list[str]:
    path.mkdir(parents=True)
    names = [f"Ex_488_Em_525_{z * 10}.tif" for z in range(len(stack))]
    for name, plane in zip(names, stack, strict=True):
        tifffile.imwrite(path / name, plane)
    return names


def test_destriping_a_folder_equals_destriping_the_stack_file(tmp_path: Path) -> None:
    stack = striped_stack(3, planes=12)
    names = as_folder(tmp_path / "planes", stack)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")

    assert cli("destripe", tmp_path / "stack.tif", "-o", tmp_path / "ref.tif", *DESTRIPE) == 0
    assert cli("destripe", tmp_path / "planes", "-o", tmp_path / "out", *DESTRIPE) == 0
    reference = tifffile.imread(tmp_path / "ref.tif")
    out = tmp_path / "out"
    # Natural order of the names (z 100 after z 90), the input's names, dtype and values.
    assert open_image(out).names == names
    assert folder_state(out) == "complete"
    for z, name in enumerate(names):
        plane = tifffile.imread(out / name)
        assert plane.dtype == np.uint16
        np.testing.assert_array_equal(plane, reference[z])
    assert not np.array_equal(reference, stack)  # something was done
    # Folder in, single TIFF and OME-Zarr out, by the output's suffix.
    assert cli("destripe", tmp_path / "planes", "-o", tmp_path / "o.tif", *DESTRIPE) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), reference)
    assert cli("destripe", tmp_path / "planes", "-o", tmp_path / "o.ome.zarr", *DESTRIPE) == 0
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr")[...], reference)


def test_interrupted_destriping_resumes_with_the_missing_planes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = striped_stack(4, planes=8)
    names = as_folder(tmp_path / "planes", stack)
    args = ["destripe", str(tmp_path / "planes"), "-o", str(tmp_path / "out"), *DESTRIPE]
    assert main([*args[:3], str(tmp_path / "ref"), *DESTRIPE]) == 0

    written: list[int] = []
    real_write = FolderPlaneWriter.write_plane

    def interrupted(self: FolderPlaneWriter, i: int, plane: np.ndarray) -> None:
        if len(written) == 3:
            raise KeyboardInterrupt  # Ctrl-C after the third plane
        real_write(self, i, plane)
        written.append(i)

    monkeypatch.setattr(FolderPlaneWriter, "write_plane", interrupted)
    assert main(args) == 130
    assert "finished planes are kept" in capsys.readouterr().err
    out = tmp_path / "out"
    assert folder_state(out) == "partial"
    assert sorted(p.name for p in out.glob("*.tif")) == sorted(names[:3])
    kept = {n: (out / n).stat().st_mtime_ns for n in names[:3]}

    monkeypatch.setattr(FolderPlaneWriter, "write_plane", real_write)
    computed: list[int] = []
    monkeypatch.setattr(
        FolderPlaneWriter,
        "write_plane",
        lambda self, i, plane: (computed.append(i), real_write(self, i, plane)),
    )
    assert main(args) == 0  # the same command again, no --overwrite needed
    assert computed == [3, 4, 5, 6, 7]  # only the missing planes were destriped
    assert {n: (out / n).stat().st_mtime_ns for n in names[:3]} == kept
    assert folder_state(out) == "complete"
    np.testing.assert_array_equal(open_image(out)[...], open_image(tmp_path / "ref")[...])

    # Finished: refused without --overwrite, rewritten with it.
    assert main(args) == 2
    assert "pass overwrite=True (--overwrite on the command line)" in capsys.readouterr().err
    computed.clear()
    assert cli(*args, "--overwrite") == 0
    assert computed == list(range(8))


def test_recursive_processes_a_tree_of_tiles(tmp_path: Path, capsys) -> None:
    root, out = tmp_path / "raw", tmp_path / "destriped"
    tiles = {"Ex_488/x_000/y_010": 5, "Ex_488/x_000/y_9": 6, "Ex_561/x_100/y_0": 7}
    for k, (tile, seed) in enumerate(tiles.items()):
        stack = striped_stack(seed, planes=3 + k)
        as_folder(root / tile, stack)
        tifffile.imwrite(tmp_path / f"tile{k}.tif", stack, photometric="minisblack")
    (root / "Ex_488" / "metadata.json").write_text("{}")

    assert main(["destripe", str(root), "-o", str(out), "--recursive", *DESTRIPE[:-1]]) == 0
    printed = capsys.readouterr().out
    # Natural order of the tiles: y_9 before y_010.
    assert printed.index("x_000/y_9") < printed.index("x_000/y_010") < printed.index("Ex_561")
    for k, tile in enumerate(tiles):
        assert folder_state(out / tile) == "complete"
        assert (
            cli("destripe", tmp_path / f"tile{k}.tif", "-o", tmp_path / f"r{k}.tif", *DESTRIPE) == 0
        )
        np.testing.assert_array_equal(
            open_image(out / tile)[...], tifffile.imread(tmp_path / f"r{k}.tif")
        )
    assert not (out / "Ex_488" / "metadata.json").exists()

    # A re-run skips the finished tiles (an interrupted tree resumes where it stopped).
    (out / "Ex_561/x_100/y_0" / COMPLETE_MARKER).unlink()
    stamp = (out / "Ex_488/x_000/y_9" / "Ex_488_Em_525_0.tif").stat().st_mtime_ns
    (out / "Ex_561/x_100/y_0" / "Ex_488_Em_525_0.tif").unlink()
    (out / "Ex_561/x_100/y_0" / ".napari-restore-progress.json").write_text(
        (out / "Ex_488/x_000/y_9" / COMPLETE_MARKER).read_text()  # wrong description: refused
    )
    assert main(["destripe", str(root), "-o", str(out), "--recursive", *DESTRIPE[:-1]]) == 2
    assert "complete, skipped" in capsys.readouterr().out
    assert (out / "Ex_488/x_000/y_9" / "Ex_488_Em_525_0.tif").stat().st_mtime_ns == stamp


def test_folder_errors_exit_2_naming_the_problem(tmp_path: Path, capsys) -> None:
    stack = striped_stack(5, planes=4)
    as_folder(tmp_path / "planes", stack)
    tifffile.imwrite(tmp_path / "planes" / "Ex_488_Em_525_20.tif", stack[0, :, :50])
    assert cli("destripe", tmp_path / "planes", "-o", tmp_path / "out", *DESTRIPE) == 2
    err = capsys.readouterr().err
    assert "Ex_488_Em_525_20.tif" in err and "(48, 50)" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.tif"))

    assert cli("destripe", tmp_path / "planes", "-o", tmp_path / "planes", *DESTRIPE) == 2
    assert "is the input" in capsys.readouterr().err
    pattern = str(tmp_path / "planes" / "*_1?.tif")
    assert cli("destripe", pattern, "-o", tmp_path / "planes", *DESTRIPE) == 2
    assert "is the input" in capsys.readouterr().err
    assert (
        cli(
            "destripe",
            tmp_path / "planes",
            "-o",
            tmp_path / "planes" / "sub",
            "--recursive",
            *DESTRIPE,
        )
        == 2
    )
    assert "inside the input tree" in capsys.readouterr().err
    assert cli("destripe", tmp_path / "nothing", "-o", tmp_path / "o", *DESTRIPE) == 2
    assert "not found" in capsys.readouterr().err


def test_simulate_and_denoise_take_folders(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stack = rng.poisson(50, (16, 32, 32)).astype(np.uint16)
    names = as_folder(tmp_path / "noisy", stack)
    # A glob picks planes 100 to 150; the output keeps the picked files' names.
    assert cli("simulate", tmp_path / "noisy" / "*_1?0.tif", tmp_path / "striped", "-q") == 0
    assert open_image(tmp_path / "striped").names == names[10:]
    # From scratch: the pretrained start (the CPU default) fixes patch_t at 32.
    train = ["--train-steps", "1", "--patch-t", "16", "--patch-xy", "16", "--from-scratch"]
    train += ["--device", "cpu", "-q"]
    assert cli("denoise", tmp_path / "noisy", "-o", tmp_path / "den", *train) == 0
    den = open_image(tmp_path / "den")
    assert den.names == names and den.dtype == np.uint16
    assert den.shape == stack.shape
