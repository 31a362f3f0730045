"""End-to-end destriping throughput (megapixels per second), file I/O excluded.

Needs no data directory: the bundled real striped SmartSPIM image is mirrored up to the asked
size and repeated as a stack, then ``napari_restore.destripe`` runs on it exactly as users call
it (percentile normalisation, tiling, blending, output cast), once to warm up and then timed.
Each tile setting is reported with the tile, overlap and batch that the API picked.

Usage::

    PYTHONPATH=src python benchmarks/bench_destripe_speed.py --device cpu --size 2048 --planes 1
    PYTHONPATH=src python benchmarks/bench_destripe_speed.py --device cuda --size 4096 \
        --planes 16 --tiles auto 1024 2048 --json out/destripe_speed.json

The issue's bars: at least 200 MP/s on an H100, at most 5 s/MP on the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_restore import destripe, load_destripe_model, load_sample
from napari_restore.core.device import describe_device, resolve_device
from napari_restore.destripe.infer import tile_settings_for


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def test_image(size: int, planes: int) -> np.ndarray:
    """``(planes, size, size)`` uint16: the real striped SmartSPIM plane, mirrored to size."""
    plane = np.asarray(load_sample("smartspim"))
    plane = plane if plane.ndim == 2 else plane.reshape(-1, *plane.shape[-2:])[0]
    reps = -(-size // min(plane.shape))
    big = np.pad(plane, [(0, reps * plane.shape[0]), (0, reps * plane.shape[1])], "symmetric")
    big = np.ascontiguousarray(big[:size, :size])
    return np.repeat(big[None], planes, axis=0) if planes > 1 else big


def measure(
    image: np.ndarray, model: torch.nn.Module, device: torch.device, tile: int | None, repeat: int
) -> dict[str, Any]:
    """Median seconds of ``repeat`` timed runs after one warm-up run."""
    ts = tile_settings_for(model, device, tile=tile)
    chosen = {"tile": ts.tile[0], "overlap": ts.overlap[0], "batch_size": ts.batch_size}
    destripe(image, model, device=device, tile=tile)  # warm-up: kernels, allocator
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        destripe(image, model, device=device, tile=tile)
        _sync(device)
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    mp = image.size / 1e6
    return {
        "tile_asked": tile or "auto",
        "settings": chosen,
        "seconds": seconds,
        "megapixels": mp,
        "mp_per_s": mp / seconds,
        "s_per_mp": seconds / mp,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="builtin", help="builtin or a model file")
    p.add_argument("--size", type=int, default=2048, help="plane edge in pixels")
    p.add_argument("--planes", type=int, default=1, help="planes in the stack")
    p.add_argument("--tiles", nargs="+", default=["auto"], help="tile sizes to try ('auto')")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, _ = load_destripe_model(None if args.model == "builtin" else args.model, device)
    image = test_image(args.size, args.planes)
    res: dict[str, Any] = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": list(image.shape),
        "dtype": image.dtype.name,
        "runs": [],
    }
    print(f"{res['device']}, torch {res['torch']}, {res['threads']} threads, image {image.shape}")
    for tile in args.tiles:
        r = measure(image, model, device, None if tile == "auto" else int(tile), args.repeat)
        res["runs"].append(r)
        print(
            f"tile {r['tile_asked']!s:>5} -> {r['settings']}: {r['seconds']:.2f} s, "
            f"{r['mp_per_s']:.1f} MP/s ({r['s_per_mp']:.3f} s/MP)",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
