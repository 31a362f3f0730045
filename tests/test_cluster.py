"""Blockwise destriping on a dask.distributed LocalCluster (2 worker processes): the same output
as the single-process path, a killed worker, an interrupted and resumed run, OME-Zarr metadata."""

from __future__ import annotations

import os
import signal
import time

import dask
import numpy as np
import pytest
import torch

distributed = pytest.importorskip("distributed")
ngff_zarr = pytest.importorskip("ngff_zarr")

from napari_restore.cli import main  # noqa: E402
from napari_restore.destripe.distributed import (  # noqa: E402
    destripe_volume,
    destripe_volume_progress,
)
from napari_restore.destripe.infer import destripe_file  # noqa: E402
from napari_restore.engine.blockwise import BlockRecord, block_grid, block_shape_for  # noqa: E402
from napari_restore.engine.model_files import save_model_file  # noqa: E402
from napari_restore.engine.tiling import (  # noqa: E402
    TileSettings,
    region_tiling,
    tile_predict,
    tile_predict_region,
)
from napari_restore.errors import RestoreInputError  # noqa: E402
from napari_restore.io import open_image, read_image, read_image_metadata  # noqa: E402
from napari_restore.models.rescbam_unet import ResCBAMUNet  # noqa: E402

SHAPE = (3, 150, 170)
SCALE = {"z": 2.0, "y": 0.5, "x": 0.25}
UNITS = {"z": "micrometer", "y": "micrometer", "x": "micrometer"}
OPTS = {"device": "cpu", "tile": 64}
# The blockwise path runs the network only (the per-plane stripe-evidence check and spectral
# clean-up need whole planes): the single-process reference runs the same way.
NETWORK_ONLY = {"only_striped": False, "cleanup": False}


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A striped OME-Zarr volume (NGFF 0.4, calibrated), a tiny model and the single-process
    result."""
    root = tmp_path_factory.mktemp("cluster")
    torch.manual_seed(0)
    net = ResCBAMUNet(base_channels=4, depth=2)
    model = root / "model"
    save_model_file(
        model, net.state_dict(), {"task": "destripe", "architecture": net.architecture()}
    )
    rng = np.random.default_rng(0)
    y = np.linspace(0, 1, SHAPE[1])[:, None]
    vol = 800 + 2000 * np.sin(9 * y) ** 2 + rng.normal(0, 50, SHAPE)
    vol[:, ::7] *= 0.7  # stripes along x
    vol = np.clip(vol, 0, 65535).astype(np.uint16)
    image = ngff_zarr.to_ngff_image(vol, dims=["z", "y", "x"], scale=SCALE, axes_units=UNITS)
    inp = root / "in.ome.zarr"
    with dask.config.set(scheduler="threads"):  # not on the test cluster
        ngff_zarr.to_ome_zarr(
            str(inp), ngff_zarr.to_multiscales(image, scale_factors=[], chunks=(1, 64, 64)), "0.4"
        )
    ref = destripe_file(inp, root / "ref.tif", model, **OPTS, **NETWORK_ONLY)
    return {"root": root, "input": inp, "model": model, "ref": read_image(ref), "volume": vol}


def test_region_tiling_matches_the_whole_array():
    """Blocks cut with the whole array's tile grid give exactly the whole-array result."""
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(1, 1, 5, padding=2)
    x = np.random.default_rng(1).random((2, 90, 130)).astype(np.float32)
    settings = TileSettings((32, 32), (8, 8), 1, (4, 4))

    def predict(t):
        return conv(t)

    from napari_restore.core.progress import run_to_end

    whole = run_to_end(tile_predict(predict, x, settings), progress_bar=False)
    for block in block_grid(x.shape[1:], (40, 50)):
        region = region_tiling(x.shape[1:], settings, block)
        part = x[(slice(None), *region.read)]
        got = run_to_end(tile_predict_region(predict, part, region), progress_bar=False)
        np.testing.assert_array_equal(got, whole[(slice(None), *block)])


def test_block_grid_and_memory_sizing():
    blocks = block_grid((5, 100, 70), (2, 64, 64))
    assert len(blocks) == 3 * 2 * 2
    covered = np.zeros((5, 100, 70), int)
    for b in blocks:
        covered[b] += 1
    assert (covered == 1).all()
    # Whole planes first, then more planes; a plane too big is split at chunk borders.
    assert block_shape_for((100, 2048, 2048), (1, 512, 512), 40, 400e6) == (2, 2048, 2048)
    assert block_shape_for((100, 2048, 2048), (1, 512, 512), 40, 50e6) == (1, 512, 2048)


def test_two_workers_equal_the_single_process_path(client, data):
    out = data["root"] / "two.ome.zarr"
    run = destripe_volume(
        data["input"],
        out,
        data["model"],
        client=client,
        block_shape=(2, 64, 64),
        pyramid=1,
        **OPTS,
    )
    assert run.computed == run.blocks == 2 * 3 * 3
    assert len(run.workers) == 2  # both worker processes computed blocks
    got = read_image(out)
    assert got.dtype == np.uint16
    assert np.abs(got.astype(np.int32) - data["ref"]).max() <= 1
    # Valid OME-Zarr (ngff-zarr validates against the NGFF schema) with the input's calibration.
    ms = ngff_zarr.from_ome_zarr(str(out), validate=True)
    level0 = ms.images[0]
    assert tuple(level0.dims) == ("z", "y", "x")
    assert level0.scale == SCALE
    assert level0.axes_units == UNITS
    assert [im.data.shape for im in ms.images] == [SHAPE, (3, 75, 85)]
    assert ms.images[1].scale == {"z": 2.0, "y": 1.0, "x": 0.5}
    assert BlockRecord(out).is_complete


def test_tiff_input_vertical_stripes_default_blocks(client, data):
    import tifffile

    tif = data["root"] / "in.tif"
    tifffile.imwrite(tif, data["volume"].swapaxes(1, 2).copy(), photometric="minisblack")
    ref = read_image(
        destripe_file(
            tif,
            data["root"] / "ref_v.tif",
            data["model"],
            direction="vertical",
            **OPTS,
            **NETWORK_ONLY,
        )
    )
    out = data["root"] / "vertical.ome.zarr"
    destripe_volume(
        tif,
        out,
        data["model"],
        client=client,
        direction="vertical",
        block_shape=(1, 170, 64),
        **OPTS,
    )
    assert np.abs(read_image(out).astype(np.int32) - ref).max() <= 1
    level0 = ngff_zarr.from_ome_zarr(str(out), validate=True).images[0]
    assert tuple(level0.dims) == ("z", "y", "x")  # uncalibrated input: unit scale
    assert level0.scale == {"z": 1.0, "y": 1.0, "x": 1.0}


def _kill_a_busy_worker(client) -> int:
    """SIGKILL the process of a worker that is computing a block; returns its pid."""
    for _ in range(200):
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.02)
    raise AssertionError("no worker was busy")


def test_a_killed_worker_does_not_change_the_output(client, data):
    out = data["root"] / "killed.ome.zarr"
    gen = destripe_volume_progress(
        data["input"], out, data["model"], client=client, block_shape=(1, 64, 64), **OPTS
    )
    killed = None
    try:
        while True:
            p = next(gen)
            if killed is None and p.step >= 1:
                killed = _kill_a_busy_worker(client)
    except StopIteration as stop:
        run = stop.value
    assert killed is not None
    assert run.computed == run.blocks == 3 * 3 * 3
    assert np.abs(read_image(out).astype(np.int32) - data["ref"]).max() <= 1
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed worker


def test_interrupted_run_resumes_without_recomputing(client, data):
    out = data["root"] / "resumed.ome.zarr"
    kwargs = {"client": client, "block_shape": (1, 64, 64), **OPTS}
    gen = destripe_volume_progress(data["input"], out, data["model"], **kwargs)
    for p in gen:
        if p.step >= 4:
            break
    gen.close()  # what Ctrl-C or Cancel does: the pending blocks are cancelled
    record = BlockRecord(out)
    finished = record.finished()
    assert 4 <= len(finished) < 27
    assert not record.is_complete
    # Clearly incomplete: not an OME-Zarr image yet, and our reader refuses it.
    with pytest.raises(RestoreInputError, match="--resume"):
        open_image(out)
    with pytest.raises(Exception):  # noqa: B017 - any refusal of ngff-zarr will do
        ngff_zarr.from_ome_zarr(str(out))
    # Starting again without --resume is refused; resuming with other settings too.
    with pytest.raises(RestoreInputError, match="exists"):
        destripe_volume(data["input"], out, data["model"], **kwargs)
    with pytest.raises(RestoreInputError, match="other settings"):
        destripe_volume(data["input"], out, data["model"], resume=True, **{**kwargs, "tile": 32})
    # Blocks that were running when cancelled may still finish: take the record just before.
    before = record.finished()
    stamps = {i: (record.done_dir / str(i)).stat().st_mtime_ns for i in before}
    run = destripe_volume(data["input"], out, data["model"], resume=True, **kwargs)
    assert run.skipped >= len(before)
    assert run.computed == 27 - run.skipped
    assert {i: (record.done_dir / str(i)).stat().st_mtime_ns for i in before} == stamps
    assert np.abs(read_image(out).astype(np.int32) - data["ref"]).max() <= 1
    assert ngff_zarr.from_ome_zarr(str(out), validate=True).images[0].scale == SCALE


def test_cli_on_a_running_cluster(client, data, capsys):
    out = data["root"] / "cli.ome.zarr"
    address = client.scheduler.address
    argv = [
        "destripe",
        str(data["input"]),
        "-o",
        str(out),
        "--model",
        str(data["model"]),
        "--device",
        "cpu",
        "--tile",
        "64",
        "--scheduler",
        address,
        "--block-size",
        "3,64,64",
        "-q",
    ]
    assert main(argv) == 0
    assert np.abs(read_image(out).astype(np.int32) - data["ref"]).max() <= 1
    # --resume without a cluster is refused before any work.
    assert main(["destripe", str(data["input"]), "-o", str(out) + "2", "--resume"]) == 2
    assert "--workers or --scheduler" in capsys.readouterr().err


@pytest.mark.parametrize("intensity", ["mean", "none"])
def test_denoise_blocks_equal_the_in_memory_run(client, data, intensity):
    """Blocks in t, y and x with the whole stack's tile grid and statistics: the in-memory
    result (the mean matched over the whole stack, in a second stage)."""
    import tifffile

    from napari_restore.denoise.distributed import denoise_volume
    from napari_restore.denoise.infer import denoise
    from napari_restore.models.srdtrans import SRDTrans

    torch.manual_seed(0)
    net = SRDTrans(patch_t=8, channels=(2, 4), embed_dim=16, heads=2).eval()
    rng = np.random.default_rng(3)
    stack = rng.poisson(20 + 10 * np.sin(np.arange(64) / 9), (16, 40, 64)).astype(np.uint16)
    tif = data["root"] / f"noisy_{intensity}.tif"
    tifffile.imwrite(tif, stack, photometric="minisblack")
    opts = {"device": "cpu", "tile": 32, "intensity": intensity}
    ref = denoise(stack, net, **opts)
    out = data["root"] / f"denoised_{intensity}.ome.zarr"
    run = denoise_volume(tif, out, net, client=client, block_shape=(8, 40, 32), **opts)
    assert run.blocks == 2 * 1 * 2
    got = read_image(out)
    assert got.dtype == np.uint16
    assert np.abs(got.astype(np.int32) - ref).max() <= (1 if intensity == "mean" else 0)
    level0 = ngff_zarr.from_ome_zarr(str(out), validate=True).images[0]
    assert tuple(level0.dims) == ("t", "y", "x")
    assert not (out / ".napari-restore" / "raw").exists()  # the scratch array is gone


def test_dock_processes_the_whole_volume_to_a_file(make_napari_viewer, qtbot, client, data):
    """ "Process whole volume to a file…" in the Destripe dock: runs on the cluster in the
    background, opens the output as a layer, Cancel leaves a resumable store."""
    from napari.layers._source import layer_source

    from napari_restore._widgets.destripe import FROM_FILE

    viewer = make_napari_viewer()
    with layer_source(path=str(data["input"])):  # as napari's reader records the file
        layer = viewer.add_image(open_image(data["input"]), name="big")
    _, dock = viewer.window.add_plugin_dock_widget("napari-restore", "Destripe")
    dock.device.value = "cpu"
    dock.tile.value = 64
    dock.model.value = FROM_FILE
    dock.model_file.value = data["model"].with_suffix(".safetensors")
    dock.image.value = layer
    panel = dock.volume
    out = data["root"] / "dock.ome.zarr"
    panel.output.value = out
    panel.scheduler.value = client.scheduler.address
    # Adaptation needs whole planes on one machine: refused before anything starts.
    dock.adapt.value = True
    panel.run_button.clicked.emit()
    assert not panel.runner.running and not out.exists()
    assert "untick 'adapt the model to this image first'" in panel.status.value
    dock.adapt.value = False
    # Cancel at once: nothing is finished, the store (if made) is incomplete.
    panel.run_button.clicked.emit()
    panel.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=120_000)
    assert not BlockRecord(out).is_complete
    # Resume: the run completes and the output layer shows the result.
    panel.resume.value = True
    panel.run_button.clicked.emit()
    qtbot.waitUntil(lambda: not panel.runner.running, timeout=120_000)
    assert "wrote dock.ome.zarr" in panel.status.value, panel.status.value
    assert panel.layer in viewer.layers
    assert np.abs(np.asarray(panel.layer.data).astype(np.int32) - data["ref"]).max() <= 1
    assert panel.layer.scale.tolist() == layer.scale.tolist()
    assert layer.data is not panel.layer.data  # the input layer is untouched


def test_single_process_ome_zarr_output_keeps_the_calibration(data):
    """The single-process path writes OME-Zarr through ngff-zarr with the input's axes, scale
    and units (no longer a hand-written block with every scale 1)."""
    out = destripe_file(
        data["input"], data["root"] / "single.ome.zarr", data["model"], **OPTS, **NETWORK_ONLY
    )
    level0 = ngff_zarr.from_ome_zarr(str(out), validate=True).images[0]
    assert level0.scale == SCALE
    assert level0.axes_units == UNITS
    np.testing.assert_array_equal(read_image(out), data["ref"])


def test_ngff_05_input_gives_ngff_05_output_equal_to_the_single_process_path(client, data):
    """NGFF 0.5 (zarr format 3) in: the cluster output is NGFF 0.5 too, valid, calibrated, and
    equal to the single-process result on the same volume."""
    image = ngff_zarr.to_ngff_image(
        data["volume"], dims=["z", "y", "x"], scale=SCALE, axes_units=UNITS
    )
    inp = data["root"] / "in05.ome.zarr"
    with dask.config.set(scheduler="threads"):  # not on the test cluster
        ngff_zarr.to_ome_zarr(
            str(inp), ngff_zarr.to_multiscales(image, scale_factors=[], chunks=(1, 64, 64)), "0.5"
        )
    assert read_image_metadata(inp).version == "0.5"
    out = data["root"] / "out05.ome.zarr"
    destripe_volume(inp, out, data["model"], client=client, block_shape=(1, 150, 96), **OPTS)
    import zarr

    group = zarr.open_group(str(out), mode="r")
    assert group.metadata.zarr_format == 3
    assert group.attrs["ome"]["version"] == "0.5"
    level0 = ngff_zarr.from_ome_zarr(str(out), validate=True).images[0]
    assert level0.scale == SCALE
    assert level0.axes_units == UNITS
    got = read_image(out)
    assert np.abs(got.astype(np.int32) - data["ref"]).max() <= 1
    assert BlockRecord(out).is_complete


def test_workers_keep_compression_within_their_threads(client, data):
    """Blosc and zarr's codec pool would use every core of the node in each worker process;
    after a block a worker uses its own thread count (1 here) for them too."""
    destripe_volume(
        data["input"], data["root"] / "threads.ome.zarr", data["model"], client=client, **OPTS
    )

    def threads() -> tuple[int, int]:
        import numcodecs.blosc
        import zarr

        return numcodecs.blosc.get_nthreads(), zarr.config.get("threading.max_workers")

    assert set(client.run(threads).values()) == {(1, 1)}
