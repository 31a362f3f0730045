"""Before/after figures of the destriping benchmark, for the docs.

For one crop per stripe type, saves a PNG with four panels side by side -- striped input | best
peer (at its best parameters from a benchmark run) | ours | clean -- labelled, all on the same
[0, 1] grey scale. The crops, stripes (seeds) and peer parameters are taken from the
``results.json`` that ``bench_destripe.py`` wrote, so the figures show exactly what was measured.

Usage (benchmark environment, from the repository root)::

    PYTHONPATH=src /work/bench-venv/bin/python benchmarks/figures.py \
        --results out/bench_destripe/results.json --out out/figures --crop 0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _destripe_data as bd
import _destripe_peers as bp
from bench_destripe import Ours, clip01, fast_psnr, resolve_device

GAP = 6  # white pixels between panels
LABEL_HEIGHT = 16


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float image to 8-bit grey (values outside clipped)."""
    return np.round(clip01(image) * 255).astype(np.uint8)


def panel_strip(panels: Sequence[tuple[str, np.ndarray]]) -> Image.Image:
    """Panels side by side with a text label above each."""
    h = max(p.shape[0] for _, p in panels)
    w = sum(p.shape[1] for _, p in panels) + GAP * (len(panels) - 1)
    canvas = Image.new("L", (w, h + LABEL_HEIGHT), color=255)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for label, image in panels:
        canvas.paste(Image.fromarray(to_uint8(image)), (x, LABEL_HEIGHT))
        draw.text((x + 2, 2), label, fill=0)
        x += image.shape[1] + GAP
    return canvas


def best_peer(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The peer row with the highest mean PSNR."""
    peers = [r for r in rows if r["kind"] == "peer"]
    return max(peers, key=lambda r: r["psnr"]) if peers else None


def main(argv: Sequence[str] | None = None) -> None:
    """Write one PNG per stripe type (and a caption file) into ``--out``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--results", type=Path, required=True, help="results.json of a benchmark run")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    p.add_argument("--data-dir", type=Path, default=default_data, help="held-out images")
    p.add_argument("--crop", type=int, default=0, help="index of the crop (order of results)")
    p.add_argument("--mode", default=None, help="stripe mode (default: the first in results)")
    p.add_argument("--model", default="builtin", help="our model: builtin or a model file")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)

    res = json.loads(args.results.read_text())
    crops = bd.load_crops(args.data_dir, quick=bool(res.get("quick")))
    crop = crops[args.crop]
    mode = args.mode or next(iter(res["results"]))
    peers_by_name = {v["name"]: v for v in res["peers"].values()}
    try:
        ours: Ours | None = Ours(args.model, resolve_device(args.device), None, None, None)
    except Exception as exc:  # API not merged yet, or no model file: figures without "ours"
        print(f"NOTE: our model is unavailable ({exc!r}); panels without it", file=sys.stderr)
        ours = None

    args.out.mkdir(parents=True, exist_ok=True)
    captions = []
    for kind, rows in res["results"][mode].items():
        stripes = res["stripes"][mode][kind]
        params = bd.stripe_params(kind, mode).replace(seed=stripes["seeds"][args.crop])
        striped = bd.degrade(crop, params)
        panels = [("striped", striped)]
        text = [f"striped {fast_psnr(striped, crop.clean):.2f} dB"]
        peer_row = best_peer(rows)
        if peer_row is not None:
            key = peers_by_name[peer_row["method"]]["package"]
            out = bp.PEERS[key].run([striped], peer_row["params"])[0]
            panels.append((peer_row["method"].split(" ")[0], out))
            text.append(f"{peer_row['method']} {fast_psnr(out, crop.clean):.2f} dB")
        if ours is not None:
            out = ours.run(striped)[0]
            panels.append(("ours", out))
            text.append(f"ours {fast_psnr(out, crop.clean):.2f} dB")
        panels.append(("clean", crop.clean))
        name = f"destripe_{mode}_{kind}_{crop.name}.png"
        panel_strip(panels).save(args.out / name)
        captions.append(f"- `{name}`: {bd.TYPE_LABELS[kind]}, {crop.name}: " + "; ".join(text))
        print(captions[-1])
    (args.out / "captions.md").write_text("\n".join(captions) + "\n")


if __name__ == "__main__":
    main()
