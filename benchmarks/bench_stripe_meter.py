"""Validation of the no-reference stripe meter (napari_restore.stripe_meter).

Part 1, synthetic pairs with known truth: clean fluorescence crops (bundled samples and images
from the shared training corpus), striped by the project's simulator (4 settings) and by
stripe fields written here with other shapes (4 kinds), then "restored" by several methods at
several strengths: identity, exact partial removal ``input - a * (input - clean)``, Gaussian
blur, an FFT notch and a wavelet-FFT filter (both written here), and the built-in model
(``napari_restore.destripe``). For each stripe type, the Spearman correlation between the meter's
numbers and the true PSNR gain (PSNR of the output minus PSNR of the input, against the clean
crop) tells whether the meter ranks outputs the way a ground truth would: pooled over all pairs
of the type, and within each striped image (the mean of per-image correlations, which is what
a user comparing outputs of one image needs).

Part 2, the real striped images (no ground truth): the SPIM and SmartSPIM images in the data
directory and the bundled SmartSPIM sample, through the built-in model and the wavelet-FFT
filter; meter numbers and before/after panels (``--figure``).

Usage (the data directory is an argument; tests never read it)::

    OMP_NUM_THREADS=1 python benchmarks/bench_stripe_meter.py --data-dir ../shared/data \\
        --out benchmarks/results/stripe_meter --figure docs/images/stripe_meter_real.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pywt
import tifffile
from scipy import ndimage
from scipy.stats import spearmanr

import napari_restore
from napari_restore.simulate import StripeParams, simulate_stripes
from napari_restore.stripe_meter import measure_stripes

CROP = 256
REAL_WAVELET = {"sigma": 4.0, "levels": 6}  # the classical filter on the real images
REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "src" / "napari_restore" / "data"
# (label, path relative to its root, root) of the clean images: sparse and dense, several
# modalities. Bundled samples live in the package; the rest in <data-dir>/train.
CLEAN_IMAGES: tuple[tuple[str, str, str], ...] = (
    ("brain_cortex (LSFM, bundled)", "brain_cortex_plane.tif", "bundled"),
    ("nuclei_dsb (fluo, bundled)", "nuclei_dsb2018.tif", "bundled"),
    ("hela_tubulin (widefield)", "train/fluo_hela_tubulin_neubias.tif", "data"),
    ("root_nuclei (LSFM)", "train/lsfm_root_nuclei_p3dunet.tif", "data"),
    ("tissue_nuclei (widefield)", "train/widefield_tissue_nuclei_unmicst.tif", "data"),
    ("ovule_membranes (confocal)", "train/confocal_ovule_membranes_p3dunet.tif", "data"),
)


# -- clean crops ---------------------------------------------------------------------------------
def load_clean(data_dir: Path, quick: bool) -> list[tuple[str, np.ndarray]]:
    """Central CROP x CROP crops scaled to [0, 1] by their 0.1th/99.9th percentiles."""
    out = []
    for label, rel, root in CLEAN_IMAGES[: 3 if quick else None]:
        path = (BUNDLED if root == "bundled" else data_dir) / rel
        img = tifffile.imread(path).astype(np.float64)
        while img.ndim > 2:
            img = img[img.shape[0] // 2]
        h, w = img.shape
        y0, x0 = (h - CROP) // 2, (w - CROP) // 2
        crop = img[y0 : y0 + CROP, x0 : x0 + CROP]
        lo, hi = np.percentile(crop, (0.1, 99.9))
        out.append((label, np.clip((crop - lo) / (hi - lo), 0, 1)))
    return out


# -- stripe fields written for this benchmark (other shapes than the simulator's) ------------------
def _field_sine(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Additive banding with a period that drifts across the image (4-20 px), full width."""
    y = np.arange(shape[0], dtype=float)
    phase = np.cumsum(2 * np.pi / np.linspace(rng.uniform(4, 8), rng.uniform(12, 20), shape[0]))
    profile = rng.uniform(0.06, 0.15) * np.sin(phase + rng.uniform(0, 6.3)) * (1 + 0 * y)
    return np.broadcast_to(profile[:, None], shape).copy(), "additive"


def _field_boxes(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Attenuation by box-profile stripes 1-6 px wide, full width (sharp edges)."""
    att = np.zeros(shape[0])
    for _ in range(rng.integers(6, 14)):
        y0, wdt = rng.integers(0, shape[0]), rng.integers(1, 7)
        att[y0 : y0 + wdt] = np.maximum(att[y0 : y0 + wdt], rng.uniform(0.2, 0.6))
    return np.broadcast_to(att[:, None], shape).copy(), "multiplicative"


def _field_wavy(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Attenuation along gently curved lines (Lorentzian profile), like a wobbling sheet."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(float)
    att = np.zeros(shape)
    for _ in range(rng.integers(5, 10)):
        y0, gamma = rng.uniform(0, h), rng.uniform(0.7, 2.5)
        centre = y0 + rng.uniform(2, 6) * np.sin(2 * np.pi * xx / rng.uniform(150, 400))
        att = np.maximum(att, rng.uniform(0.25, 0.6) / (1 + ((yy - centre) / gamma) ** 2))
    return att, "multiplicative"


def _field_segments(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Additive dark or bright horizontal segments 30-150 px long with soft ends."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(float)
    field = np.zeros(shape)
    for _ in range(rng.integers(12, 25)):
        y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        half, sig = rng.uniform(15, 75), rng.uniform(0.6, 2.0)
        along = np.clip(1 - np.maximum(np.abs(xx - x0) - half, 0) / 10, 0, 1)
        sign = rng.choice([-1.0, 1.0])
        field += sign * rng.uniform(0.08, 0.2) * np.exp(-0.5 * ((yy - y0) / sig) ** 2) * along
    return field, "additive"


HAND_MADE: dict[str, Callable[[np.random.Generator, tuple[int, int]], tuple[np.ndarray, str]]] = {
    "hand: drifting sine (add.)": _field_sine,
    "hand: box profile (mult.)": _field_boxes,
    "hand: wavy Lorentzian (mult.)": _field_wavy,
    "hand: short segments (add.)": _field_segments,
}
SIMULATOR: dict[str, StripeParams] = {
    "sim: regular (mult.)": StripeParams(kind="regular", mode="multiplicative"),
    "sim: Gaussian (mult.)": StripeParams(kind="gaussian", mode="multiplicative"),
    "sim: tilted (mult.)": StripeParams(kind="tilted", mode="multiplicative"),
    "sim: Gaussian bright (add.)": StripeParams(
        kind="gaussian", mode="additive", polarity="bright", amplitude=(0.1, 0.4)
    ),
}


def stripe(clean: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """The striped version of a clean crop for one stripe type (clipped to [0, 1])."""
    if kind in SIMULATOR:
        params = SIMULATOR[kind]
        striped = simulate_stripes(clean, params, seed=seed, output_dtype="float64").image
    else:
        field, mode = HAND_MADE[kind](np.random.default_rng(seed), clean.shape)
        striped = clean * (1 - field) if mode == "multiplicative" else clean + field
    return np.clip(striped, 0.0, 1.0)


# -- restorations --------------------------------------------------------------------------------
def fft_notch(img: np.ndarray, width: float) -> np.ndarray:
    """Remove horizontal stripes: damp k_x ~ 0 (Gaussian notch of ``width`` frequency steps),
    except at the lowest |k_y| (the image's large-scale shading)."""
    f = np.fft.fft2(img - img.mean())
    ky = np.fft.fftfreq(img.shape[0])[:, None] * img.shape[0]
    kx = np.fft.fftfreq(img.shape[1])[None, :] * img.shape[1]
    notch = 1 - np.exp(-0.5 * (kx / width) ** 2) * (1 - np.exp(-0.5 * (ky / 2.0) ** 2))
    return np.real(np.fft.ifft2(f * notch)) + img.mean()


def wavelet_fft(img: np.ndarray, sigma: float = 2.0, levels: int = 4) -> np.ndarray:
    """Wavelet-FFT destriping (Münch et al., Opt. Express 17(10), 8567, 2009), horizontal
    stripes: the horizontal detail bands are damped near k_x = 0 by a Gaussian notch."""
    levels = min(levels, pywt.dwtn_max_level(img.shape, "db10"))
    coeffs = pywt.wavedec2(img, "db10", level=levels, mode="symmetric")
    out = [coeffs[0]]
    for ch, cv, cd in coeffs[1:]:
        k = np.fft.fftfreq(ch.shape[1]) * ch.shape[1]
        damp = 1 - np.exp(-0.5 * (k / sigma) ** 2)
        ch = np.real(np.fft.ifft(np.fft.fft(ch, axis=1) * damp[None, :], axis=1))
        out.append((ch, cv, cd))
    rec = pywt.waverec2(out, "db10", mode="symmetric")
    return rec[: img.shape[0], : img.shape[1]]


def builtin_model(img: np.ndarray) -> np.ndarray:
    return napari_restore.destripe(
        img.astype(np.float32), "builtin", device="cpu", direction="horizontal"
    ).astype(np.float64)


def methods(striped: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    field = striped - clean
    out = {"identity": striped.copy()}
    for a in (0.25, 0.5, 0.75, 1.0):
        out[f"partial a={a}"] = striped - a * field
    for s in (1.0, 2.0):
        out[f"blur sigma={s}"] = ndimage.gaussian_filter(striped, s)
    for wdt in (0.5, 2.0):
        out[f"fft notch w={wdt}"] = fft_notch(striped, wdt)
    out["wavelet-fft"] = wavelet_fft(striped)
    out["wavelet-fft strong"] = wavelet_fft(striped, sigma=4.0, levels=6)
    out["built-in model"] = builtin_model(striped)
    return out


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((x - ref) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _rho(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan
    return float(spearmanr(a[ok], b[ok]).statistic)


def synthetic(data_dir: Path, quick: bool, domain: str = "linear") -> dict[str, Any]:
    crops = load_clean(data_dir, quick)
    kinds = list(SIMULATOR) + list(HAND_MADE)
    rows: list[dict[str, Any]] = []
    t_meter = []
    for ki, kind in enumerate(kinds):
        for ci, (label, clean) in enumerate(crops):
            striped = stripe(clean, kind, seed=1000 + 100 * ki + ci)
            p_in = psnr(striped, clean)
            for name, out in methods(striped, clean).items():
                t0 = time.perf_counter()
                m = measure_stripes(striped, out, direction="auto", domain=domain)
                t_meter.append(time.perf_counter() - t0)
                gain = psnr(out, clean) - p_in
                rows.append(
                    {
                        "stripe_type": kind,
                        "image": label,
                        "method": name,
                        "psnr_gain_db": gain if math.isfinite(gain) else 99.0,
                        "stripe_removed": m.stripe_removed,
                        "structure_changed": m.structure_changed,
                        "median_change": m.median_change,
                        "direction": m.direction,
                        "angle": m.angle,
                    }
                )
        print(f"{kind}: done", flush=True)
    clean_contrast = {
        label: measure_stripes(clean, clean, domain=domain).stripe_contrast
        for label, clean in crops
    }
    return {
        "images": [label for label, _ in crops],
        "crop": CROP,
        "stripe_types": kinds,
        "clean_stripe_contrast": clean_contrast,
        "rows": rows,
        "domain": domain,
        "meter_seconds_per_256px_plane": float(np.median(t_meter)),
    }


COMBINED_WEIGHT = 10.0  # stripe_removed - 10 x structure_changed: one number for ranking


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Spearman correlations with the true PSNR gain, per stripe type.

    Two sets of clean images: all, and those whose clean crop shows no stripe signal of its
    own (several light-sheet and confocal crops carry real stripes, which the 'clean' truth
    then keeps and a good destriper removes, so the PSNR gain punishes it).
    """
    rows = result["rows"]
    stripe_free = [k for k, v in result["clean_stripe_contrast"].items() if v == 0.0]
    out: dict[str, Any] = {"stripe_free_images": stripe_free}
    for subset, images in (("all images", result["images"]), ("stripe-free images", stripe_free)):
        table = {}
        for kind in result["stripe_types"]:
            sel = [r for r in rows if r["stripe_type"] == kind and r["image"] in images]

            def corr(
                key: Callable[[dict[str, Any]], float], sel=sel, images=images
            ) -> tuple[float, float]:
                pooled = _rho([key(r) for r in sel], [r["psnr_gain_db"] for r in sel])
                per = [
                    _rho(
                        [key(r) for r in sel if r["image"] == im],
                        [r["psnr_gain_db"] for r in sel if r["image"] == im],
                    )
                    for im in images
                ]
                return pooled, float(np.nanmean(per)) if np.isfinite(per).any() else math.nan

            def num(v: Any) -> float:
                return math.nan if v is None else float(v)

            s_pool, s_per = corr(lambda r: num(r["stripe_removed"]))
            c_pool, c_per = corr(lambda r: -r["structure_changed"])
            k_pool, k_per = corr(
                lambda r: num(r["stripe_removed"]) - COMBINED_WEIGHT * r["structure_changed"]
            )
            perfect = [r for r in sel if r["method"] == "partial a=1.0"]
            table[kind] = {
                "n": len(sel),
                "stripe_removed": {"pooled": s_pool, "per_image_mean": s_per},
                "minus_structure_changed": {"pooled": c_pool, "per_image_mean": c_per},
                "combined": {"pooled": k_pool, "per_image_mean": k_per},
                "stripes_found_share": float(
                    np.mean([r["stripe_removed"] is not None for r in sel])
                ),
                "direction_horizontal_share": float(
                    np.mean([r["direction"] == "horizontal" for r in sel])
                ),
                "perfect_removal_stripe_removed_mean": float(
                    np.nanmean([num(r["stripe_removed"]) for r in perfect])
                ),
                "perfect_removal_structure_changed_mean": float(
                    np.mean([r["structure_changed"] for r in perfect])
                ),
            }
        out[subset] = table
    return out


# -- real images ---------------------------------------------------------------------------------
def load_real(data_dir: Path) -> list[tuple[str, np.ndarray]]:
    import imageio.v3 as iio

    spim = tifffile.imread(data_dir / "real_striped_spim_tosi.tif")
    aind = iio.imread(data_dir / "real_striped_smartspim_aind.png")[..., 0]
    bundled = tifffile.imread(BUNDLED / "smartspim_striped.tif")
    return [
        ("SPIM (Tosi), 2048²", spim),
        ("SmartSPIM (AIND png)", aind),
        ("SmartSPIM (bundled sample)", bundled),
    ]


# Zoomed regions of the panels (rows, cols), where the stripes can be seen at full resolution.
ZOOM = {
    "SPIM (Tosi), 2048²": (slice(900, 1300), slice(700, 1300)),
    "SmartSPIM (AIND png)": (slice(10, 110), slice(0, 160)),
    "SmartSPIM (bundled sample)": (slice(10, 110), slice(0, 160)),
}


def real(
    data_dir: Path,
    adapt: int = 0,
    model_file: str = "builtin",
    device: str = "cpu",
    domains: tuple[str, ...] = ("linear",),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Meter rows for the real images; with ``adapt`` > 0 also the model adapted to each image
    (``destripe(adapt_steps=adapt)``). ``model_file``: the built-in model or a model file.
    One row per method and meter domain."""
    rows, outputs = [], {}
    for label, img in load_real(data_dir):
        x = img.astype(np.float32)
        t0 = time.perf_counter()
        model = napari_restore.destripe(img, model_file, device=device, direction="horizontal")
        t_model = time.perf_counter() - t0
        classical = wavelet_fft(x, **REAL_WAVELET)
        outputs[label] = (img, model, classical)
        first = measure_stripes(img, model)
        # The model's output brought back to the input's foreground median: how much of its
        # stripe reading is its brightening (energies scale with the gain squared).
        matched = model.astype(np.float64) / (1.0 + first.median_change)
        # (method, output, seconds the model took to make it)
        variants = [
            ("built-in model", model, t_model),
            ("built-in model, median-matched", matched, None),
            ("wavelet-fft", classical, None),
        ]
        if adapt:
            t0 = time.perf_counter()
            adapted = napari_restore.destripe(
                img, model_file, device=device, direction="horizontal", adapt_steps=adapt
            )
            seconds = time.perf_counter() - t0
            variants.append((f"built-in model, adapted ({adapt} steps)", adapted, seconds))
        for (name, out, t_made), domain in itertools.product(variants, domains):
            t0 = time.perf_counter()
            m = measure_stripes(img, out, domain=domain)
            t_meter = time.perf_counter() - t0
            rows.append(
                {
                    "image": label,
                    "shape": list(img.shape),
                    "method": name,
                    **m.as_dict(),
                    "meter_seconds": t_meter,
                    "model_seconds": t_made,
                }
            )
            print(f"{label} / {name} ({domain}): {m.verdict} ({t_meter:.2f} s)", flush=True)
    return rows, outputs


def figure(outputs: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> None:
    """Input | built-in model | wavelet-FFT for each real image, with a zoom (ZOOM).

    Needs matplotlib (``pip install "napari-restore[bench]"``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    verdicts: dict[tuple[str, str], list[str]] = {}
    for r in rows:  # one line per meter domain
        if r["domain"] == "linear":  # wrapped: the fine-stripe clause makes it too wide
            line = "\n".join(textwrap.wrap(r["verdict"], 60))
        else:  # short, so that the titles of neighbouring panels do not overlap
            removed = "—" if r["stripe_removed"] is None else f"{100 * r['stripe_removed']:.0f} %"
            line = f"log domain: {removed} removed, {100 * r['structure_changed']:.2g} % structure"
        verdicts.setdefault((r["image"], r["method"]), []).append(line)
    verdict = {key: "\n".join(lines) for key, lines in verdicts.items()}
    fig, axes = plt.subplots(2 * len(outputs), 3, figsize=(13, 8.6 * len(outputs) / 1.5))
    for i, (label, (img, model, classical)) in enumerate(outputs.items()):
        lo, hi = np.percentile(img, (0.5, 99.5))
        zy, zx = ZOOM[label]
        for j, (name, a) in enumerate(
            (("input", img), ("built-in model", model), ("wavelet-FFT (classical)", classical))
        ):
            key = "wavelet-fft" if j == 2 else name
            title = f"{label}: {name}"
            if j:
                title += "\n" + verdict[(label, key)]
            for k, view in enumerate((a, a[zy, zx])):
                ax = axes[2 * i + k, j]
                ax.imshow(view, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
                ax.set_axis_off()
                if k == 0:
                    ax.set_title(title, fontsize=8)
                else:
                    ax.set_title(
                        f"zoom: rows {zy.start}-{zy.stop}, cols {zx.start}-{zx.stop}", fontsize=7
                    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    from PIL import Image

    Image.open(path).convert("L").save(path, optimize=True)  # grey panels: a third of the size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/stripe_meter")
    ap.add_argument("--figure", type=Path, default=None, help="PNG of the real-image panels")
    ap.add_argument("--quick", action="store_true", help="3 images only")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--from-json", type=Path, default=None, help="re-summarise a stored run")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument(
        "--adapt", type=int, default=0, metavar="STEPS", help="also the model adapted per image"
    )
    ap.add_argument("--model", default="builtin", help="our model: builtin or a model file")
    ap.add_argument("--device", default="cpu", help="device of our model (cpu, cuda)")
    ap.add_argument(
        "--domain",
        choices=("linear", "log", "both"),
        default="both",
        help="meter domain: synthetic part in one domain (both: log), real images in one or both",
    )
    args = ap.parse_args()
    domains = ("linear", "log") if args.domain == "both" else (args.domain,)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    result: dict[str, Any] = {
        "napari_restore": napari_restore.__version__,
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "model": args.model,
        "device": args.device,
        "load_average_at_start": list(os.getloadavg()),
    }
    if args.from_json is not None:
        result["synthetic"] = json.loads(args.from_json.read_text())["synthetic"]
    elif not args.skip_synthetic:
        result["synthetic"] = synthetic(args.data_dir, args.quick, domains[-1])
    if "synthetic" in result:
        result["synthetic"]["summary"] = summarise(result["synthetic"])
    rows, outputs = (
        ([], {})
        if args.skip_real
        else real(args.data_dir, args.adapt, args.model, args.device, domains)
    )
    if rows:
        result["real"] = rows
    elif args.from_json is not None:
        result["real"] = json.loads(args.from_json.read_text()).get("real", [])
    result["load_average_at_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    name = "results_quick.json" if args.quick else "results.json"
    with open(args.out / name, "w") as fh:
        json.dump(result, fh, indent=1, default=lambda v: None)
    if args.figure is not None and outputs:
        figure(outputs, rows, args.figure)
    if "synthetic" in result:
        summary = result["synthetic"]["summary"]
        for subset in ("all images", "stripe-free images"):
            print(f"\n{subset}: Spearman with the PSNR gain, pooled / mean per image")
            print(f"{'stripe type':30s} stripe removed  -structure   combined  perfect")
            for kind, t in summary[subset].items():
                cells = [
                    f"{t[k]['pooled']:+.2f} / {t[k]['per_image_mean']:+.2f}"
                    for k in ("stripe_removed", "minus_structure_changed", "combined")
                ]
                print(
                    f"{kind:30s} "
                    + "  ".join(cells)
                    + f"  {t['perfect_removal_stripe_removed_mean']:.2f}"
                )


if __name__ == "__main__":
    main()
