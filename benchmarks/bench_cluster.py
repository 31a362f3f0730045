"""Blockwise destriping on a dask.distributed LocalCluster: memory, scaling, real-model speed.

Three measurements (issue 13, bar 2), each printed with the load average of the machine:

1. ``big``: a synthetic uint16 OME-Zarr volume of ``--size-gb`` (default 4.3 GB: 512 planes of
   2048²) destriped with a small network (ResCBAM U-Net, 1 base channel, 1 level, tiles of 1024
   px: the cost is the machinery, not the network) on 2 workers; the peak memory of the
   client, scheduler, nannies and workers together (resident set, sampled every 0.25 s with
   psutil over the whole process tree) must stay under 3 GB;
2. ``scaling``: the same small network on a 24-plane volume with 1 and with 2 workers (one
   thread each); megapixels per second of the block phase (cluster start-up excluded). A
   1-channel network streams its activations through memory, and on this 2-core VM two
   memory-bound processes together run only ~1.3x faster than one, so the scaling is also
   measured with tiles of 256 px, whose activations stay in cache;
3. ``real``: the built-in model on a smaller volume, on the cluster (1 and 2 workers × 1
   thread) against the single-process path (``destripe_file``, torch on all cores), in MP/s.

Run (writes the volumes under --workdir, about 2 × the volume size on disk)::

    OMP_NUM_THREADS=1 nohup python benchmarks/bench_cluster.py --workdir /tmp/bench-cluster \\
        > /tmp/bench-cluster.log 2>&1 &

Results go to ``benchmarks/results/cluster.json`` (``--out``) and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


class PeakMemory:
    """Peak of the summed resident memory of this process and all its descendants."""

    def __init__(self, interval: float = 0.25) -> None:
        import psutil

        self.root = psutil.Process()
        self.interval = interval
        self.peak = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        import psutil

        total, n = 0, 0
        for p in [self.root, *self.root.children(recursive=True)]:
            try:
                total += p.memory_info().rss
                n += 1
            except psutil.Error:
                pass
        if total > self.peak:
            self.peak, self.peak_processes = total, n
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def make_volume(path: Path, planes: int, edge: int, seed: int = 0) -> Path:
    """A striped uint16 OME-Zarr volume, calibrated (z 2 µm, y/x 0.5 µm), written plane by
    plane (never all in memory)."""
    import zarr

    from napari_restore.io import ImageMetadata, create_ome_zarr, finish_ome_zarr, open_image

    if (path / ".bench-complete").exists() and open_image(path).shape == (planes, edge, edge):
        return path  # made by an earlier run
    shutil.rmtree(path, ignore_errors=True)
    shape = (planes, edge, edge)
    meta = ImageMetadata(
        ("z", "y", "x"),
        {"z": 2.0, "y": 0.5, "x": 0.5},
        {"z": 0.0, "y": 0.0, "x": 0.0},
        {"z": "micrometer", "y": "micrometer", "x": "micrometer"},
        "0.4",
        "synthetic",
    )
    array = zarr.open_array(create_ome_zarr(path, shape, np.uint16, (1, 512, 512), meta), mode="r+")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:edge, 0:edge].astype(np.float32) / edge
    base = 1500 + 1200 * np.sin(23 * xx + 7 * yy) ** 2 * np.exp(-((yy - 0.5) ** 2) * 4)
    noise = [rng.normal(0, 60, (edge, edge)).astype(np.float32) for _ in range(4)]
    stripes = 1 - 0.4 * (rng.random(edge) < 0.05).astype(np.float32)[:, None]
    for z in range(planes):
        plane = (base * (0.8 + 0.4 * z / planes)) * np.roll(stripes, 3 * z, axis=0)
        array[z] = np.clip(plane + noise[z % 4], 0, 65535).astype(np.uint16)
    finish_ome_zarr(path)
    (path / ".bench-complete").touch()
    return path


def small_model(path: Path) -> Path:
    import torch

    from napari_restore.engine.model_files import save_model_file
    from napari_restore.models.rescbam_unet import ResCBAMUNet

    torch.manual_seed(0)
    net = ResCBAMUNet(base_channels=1, depth=1)
    save_model_file(
        path,
        net.state_dict(),
        {"task": "destripe", "architecture": net.architecture()},
        overwrite=True,
    )
    return path


def cluster_run(
    inp: Path,
    out: Path,
    model: Any,
    workers: int,
    tile: int | None,
    minutes: float | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """One run on a fresh LocalCluster; ``minutes``: stop it then (as Cancel does: the store
    stays incomplete and resumable) and report the part done."""
    from distributed import Client, LocalCluster

    from napari_restore.destripe.distributed import destripe_volume_progress
    from napari_restore.engine.blockwise import BlockRecord, BlockRun
    from napari_restore.io import open_image

    skipped = kwargs.pop("_skipped", 0)  # blocks an earlier part of a resumed run did
    if not kwargs.get("resume"):
        shutil.rmtree(out, ignore_errors=True)
    shape = open_image(inp).shape
    before = load()
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        t1 = time.perf_counter()
        gen = destripe_volume_progress(
            inp, out, model, client=client, device="cpu", tile=tile, **kwargs
        )
        deadline = time.perf_counter() + 60 * minutes if minutes else float("inf")
        stopped = False
        try:
            while True:
                next(gen)
                if time.perf_counter() > deadline:
                    stopped = True
                    break
        except StopIteration as stop:
            run = stop.value
        finally:
            if stopped:
                gen.close()
                done = BlockRecord(out).finished()
                first = BlockRecord(out).read() or {}
                run = BlockRun(
                    blocks=int(first.get("blocks", 0)),
                    computed=len(done) - skipped,
                    skipped=skipped,
                    seconds=time.perf_counter() - t1,
                    workers={},
                )
            client.close()
            cluster.close()
    wall = time.perf_counter() - t0
    mp = float(np.prod(shape)) / 1e6 * run.computed / max(1, run.blocks)
    return {
        "workers": workers,
        "shape": list(shape),
        "gb": float(np.prod(shape)) * 2 / 1e9,
        "blocks": run.blocks,
        "blocks_computed": run.computed,
        "blocks_skipped_resumed": run.skipped,
        "block_seconds": run.seconds,
        "mp_per_s_blocks": mp / run.seconds,
        "seconds_with_startup": wall,
        "startup_seconds": t1 - t0,
        "blocks_per_worker": sorted(run.workers.values()),
        "stopped_after_minutes": minutes if stopped else None,
        "peak_rss_gb_all_processes": mem.peak / 1e9,
        "processes_at_peak": mem.peak_processes,
        "load_before": before,
        "load_after": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-cluster"))
    parser.add_argument("--size-gb", type=float, default=4.3)
    parser.add_argument("--edge", type=int, default=2048)
    parser.add_argument("--stages", nargs="+", default=["big", "scaling", "real"])
    parser.add_argument("--scaling-planes", type=int, default=24)
    parser.add_argument(
        "--scaling-tiles",
        type=int,
        nargs="+",
        default=[1024, 256],
        help="tile sizes of the small network in the scaling runs (1024 is the big run's)",
    )
    parser.add_argument("--real-planes", type=int, default=8)
    parser.add_argument("--real-edge", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cluster.json"))
    parser.add_argument("--keep", action="store_true", help="keep the outputs")
    parser.add_argument(
        "--big-minutes",
        type=float,
        default=None,
        help="stop the big run after this long (resumable: the next run continues it)",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    model = small_model(args.workdir / "small_model")

    def save(key: str, value: Any) -> None:
        results[key] = value
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        print(key, json.dumps(value, indent=1), flush=True)

    if "big" in args.stages:
        planes = int(np.ceil(args.size_gb * 1e9 / (2 * args.edge**2)))
        t = time.perf_counter()
        inp = make_volume(args.workdir / "big.ome.zarr", planes, args.edge)
        print(
            f"volume {planes}x{args.edge}x{args.edge} in {time.perf_counter() - t:.0f} s, {load()}",
            flush=True,
        )
        out = args.workdir / "big_out.ome.zarr"
        # An interrupted big run (Ctrl-C, a killed benchmark) is resumed: each part is recorded.
        record = out / ".napari-restore" / "run.json"
        resume = record.exists()
        skipped = len(list((out / ".napari-restore" / "done").glob("[0-9]*"))) if resume else 0
        key = "big_2_workers_small_model" + (f"_resumed_at_{skipped}" if resume else "")
        save(
            key,
            cluster_run(
                inp,
                out,
                model,
                2,
                tile=1024,
                minutes=args.big_minutes,
                resume=resume,
                _skipped=skipped,
            ),
        )
        finished = record.exists() and json.loads(record.read_text()).get("complete")
        if not args.keep and finished:
            shutil.rmtree(out, ignore_errors=True)
    if "scaling" in args.stages:
        inp = make_volume(args.workdir / "scaling.ome.zarr", args.scaling_planes, args.edge, 1)
        for tile in args.scaling_tiles:
            for workers in (1, 2):
                out = args.workdir / f"scaling_{workers}.ome.zarr"
                save(
                    f"scaling_tile{tile}_{workers}_worker",
                    cluster_run(inp, out, model, workers, tile=tile),
                )
            one = results[f"scaling_tile{tile}_1_worker"]
            two = results[f"scaling_tile{tile}_2_worker"]
            save(f"scaling_tile{tile}_speedup", two["mp_per_s_blocks"] / one["mp_per_s_blocks"])
    if "real" in args.stages:
        from napari_restore.destripe.infer import destripe_file

        inp = make_volume(args.workdir / "real.ome.zarr", args.real_planes, args.real_edge, 2)
        out = args.workdir / "real_single.tif"
        out.unlink(missing_ok=True)
        mp = args.real_planes * args.real_edge**2 / 1e6
        import torch

        torch.set_num_threads(os.cpu_count() or 1)  # the single process may use every core
        before = load()
        t = time.perf_counter()
        # The network alone, as on the cluster (the per-plane evidence check and clean-up
        # need whole planes and are not part of the blockwise path).
        destripe_file(inp, out, None, device="cpu", only_striped=False, cleanup=False)
        single = time.perf_counter() - t
        save(
            "real_single_process",
            {
                "mp_per_s": mp / single,
                "seconds": single,
                "torch_threads": _threads(),
                "load_before": before,
                "load_after": load(),
            },
        )
        for workers in (1, 2):
            save(
                f"real_cluster_{workers}_worker",
                # One block per plane, so that both workers have work on this small volume.
                cluster_run(
                    inp,
                    args.workdir / "real_cluster.ome.zarr",
                    None,
                    workers,
                    tile=None,
                    block_shape=(1, args.real_edge, args.real_edge),
                ),
            )
        one, two = results["real_cluster_1_worker"], results["real_cluster_2_worker"]
        save("real_cluster_speedup", two["mp_per_s_blocks"] / one["mp_per_s_blocks"])
        from napari_restore.io import read_image

        a = read_image(out).astype(np.int32)
        b = read_image(args.workdir / "real_cluster.ome.zarr")
        save("real_max_abs_difference", int(np.abs(a - b).max()))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
