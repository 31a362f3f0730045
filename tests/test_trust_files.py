"""File fuzz: zarr / OME-Zarr headers claiming absurd shapes, truncated and mislabelled files.
Every subcommand answers with one clear line (exit code 2) before allocating anything."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

import napari_restore.io as nio
from napari_restore.cli import main
from napari_restore.errors import RestoreInputError
from napari_restore.io import open_image, read_image

BOMB = [100_000, 100_000, 100_000]  # 4 PB of float32


def _zarr_v2(path, shape=BOMB):
    path.mkdir(parents=True)
    header = {
        "zarr_format": 2, "shape": shape, "chunks": [1, 1000, 1000][-len(shape):],
        "dtype": "<f4", "compressor": None, "fill_value": 0.0, "order": "C", "filters": None,
    }  # fmt: skip
    (path / ".zarray").write_text(json.dumps(header))
    return path


def _zarr_v3(path):
    path.mkdir(parents=True)
    header = {
        "zarr_format": 3, "node_type": "array", "shape": BOMB, "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1000, 1000]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    }  # fmt: skip
    (path / "zarr.json").write_text(json.dumps(header))
    return path


def _ome(path):
    path.mkdir()
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    axes = [{"name": a, "type": "space"} for a in "zyx"]
    ms = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    (path / ".zattrs").write_text(json.dumps({"multiscales": ms}))
    _zarr_v2(path / "0")
    return path


def _group_of_one(path):
    path.mkdir()
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    _zarr_v2(path / "data")
    return path


def _with_one_real_chunk(path):
    _zarr_v2(path)
    (path / "0.0.0").write_bytes(np.ones((1000, 1000), "<f4").tobytes())  # 4 MB of 4 PB
    return path


BOMBS = {
    "v2": lambda d: _zarr_v2(d / "b.zarr"),
    "v3": lambda d: _zarr_v3(d / "b.zarr"),
    "ome": lambda d: _ome(d / "b.ome.zarr"),
    "group": lambda d: _group_of_one(d / "g.zarr"),
    "one-chunk": lambda d: _with_one_real_chunk(d / "c.zarr"),
    "2d": lambda d: _zarr_v2(d / "p.zarr", shape=[100_000, 100_000]),
}


@pytest.mark.parametrize("kind", BOMBS)
def test_zarr_header_bombs_are_refused_when_opened(tmp_path, kind):
    path = BOMBS[kind](tmp_path)
    with pytest.raises(RestoreInputError, match=r"header claims shape .* chunk files hold only"):
        open_image(path)


@pytest.mark.parametrize(
    "args",
    [
        ["destripe", "{b}", "-o", "{o}/o.tif"],
        ["simulate", "{b}", "{o}/o.tif"],
        ["simulate", "{b}", "{o}/o.tif", "--mode", "additive"],
        ["noise", "{b}", "{o}/o.tif"],
        ["metrics", "{b}", "{b}"],
        ["metrics", "{b}", "{b}", "--no-reference"],
        ["denoise", "{b}", "-o", "{o}/o.tif", "--train-minutes", "0.01"],
        ["train-destripe", "{b}", "-o", "{o}/m", "--steps", "1"],
    ],
    ids=lambda a: " ".join(a[:1] + a[3:]),
)
def test_every_subcommand_refuses_a_zarr_bomb(tmp_path, capsys, args):
    bomb = _zarr_v2(tmp_path / "b.zarr")
    argv = [a.format(b=bomb, o=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "header claims" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.zarr"]  # nothing written


def test_a_real_zarr_with_every_chunk_passes_the_check(tmp_path, monkeypatch):
    monkeypatch.setattr(nio, "_ZARR_CHECKED_BYTES", 1024)  # check even this small array
    data = np.random.default_rng(0).uniform(0, 1, (4, 64, 64)).astype(np.float32)
    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=data.shape, dtype="f4",
                        chunks=(1, 64, 64), zarr_format=2)  # fmt: skip
    z[...] = data
    np.testing.assert_array_equal(read_image(tmp_path / "a.zarr"), data)
    monkeypatch.setattr(nio, "_MAX_ZARR_EXPANSION", 1)
    for chunk in (tmp_path / "a.zarr").glob("[123].*"):
        chunk.unlink()  # three of four planes never written: more than 1x missing
    with pytest.raises(RestoreInputError, match="hold only"):
        open_image(tmp_path / "a.zarr")


def test_planes_that_cannot_fit_in_memory_are_refused_before_reading(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 64, 64), np.uint16))
    monkeypatch.setattr(nio, "available_memory", lambda: 10_000)
    with pytest.raises(RestoreInputError, match=r"planes of 64 x 64 pixels need .* memory"):
        open_image(tmp_path / "a.tif")
    monkeypatch.setattr(nio, "available_memory", lambda: 40_000)  # a plane fits, not all
    assert open_image(tmp_path / "a.tif").shape == (8, 64, 64)
    with pytest.raises(RestoreInputError, match=r"only .* is available"):
        read_image(tmp_path / "a.tif")


def _png_named_tif(d):
    import imageio.v3 as iio

    iio.imwrite(d / "x.png", np.zeros((8, 8), np.uint8))
    (d / "x.png").rename(d / "png.tif")
    return d / "png.tif"


def _truncated_npy(d):
    np.save(d / "t.npy", np.zeros((64, 64), np.float32))
    raw = (d / "t.npy").read_bytes()
    (d / "t.npy").write_bytes(raw[: len(raw) // 2])
    return d / "t.npy"


def _pickled_npy(d):
    np.save(d / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return d / "o.npy"


FUZZ = {
    "random bytes .tif": lambda d: (d / "r.tif").write_bytes(bytes(range(256)) * 4) and d / "r.tif",
    "json named .tif": lambda d: (d / "j.tif").write_text('{"a": 1}') and d / "j.tif",
    "empty .tif": lambda d: (d / "e.tif").write_bytes(b"") is not None and d / "e.tif",
    "png named .tif": _png_named_tif,
    "text named .npy": lambda d: (d / "n.npy").write_text("hello") and d / "n.npy",
    "truncated .npy": _truncated_npy,
    "pickled .npy": _pickled_npy,
    "empty .zarr folder": lambda d: (d / "z.zarr").mkdir() or d / "z.zarr",
    "truncated .zarray": lambda d: (
        _zarr_v2(d / "h.zarr")
        and ((d / "h.zarr" / ".zarray").write_text('{"zarr_format": 2, "shape": ['))
        and d / "h.zarr"
    ),
    "unknown suffix": lambda d: (d / "x.xyz").write_text("x") and d / "x.xyz",
    "tiny png": lambda d: (d / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n") and d / "b.png",
}


@pytest.mark.parametrize("kind", FUZZ)
def test_damaged_and_mislabelled_files_give_one_clear_error(tmp_path, capsys, kind):
    path = FUZZ[kind](tmp_path)
    with pytest.raises(RestoreInputError):
        open_image(path)
    assert main(["destripe", str(path), "-o", str(tmp_path / "out.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-restore destripe: error:") and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out.tif").exists()
