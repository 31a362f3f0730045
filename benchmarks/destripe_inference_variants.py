"""Inference-side variants of the destriping pipeline on the held-out crops (no training).

Bar 1 of the destriping issue is not met on stripes unlike the training sampler's. Before the
next training run this measures whether anything *around* the shipped network closes the gap.
For the 16 held-out crops of ``bench_destripe.py --set heldout`` and the stripes of all three
stripe models (``project``, ``independent``, ``blind``; multiplicative, the same seeds as
``bench_destripe.py``), mean PSNR (dB, outputs clipped to [0, 1]) of

- ``pipeline``: the default ``destripe`` (evidence, stripe-shaped correction, notch);
- ``network only``: the network's output on every plane;
- ``rotate to stripe angle``: planes whose stripe evidence has a strongest angle of at least
  4 degrees are rotated (bicubic, canvas grown, reflected borders) so that those stripes run
  along x, the network's log-correction is rotated back and applied to the unresampled input,
  then the pipeline's own steps;
- ``reflect pad N``: each crop reflect-padded by N px before the network (more context at the
  borders of one-tile planes), cropped back;
- ``flip average 2 / 4``: the log-corrections of the crop and its mirror images (x; x, y, both)
  averaged (test-time augmentation);
- ``network twice``: the network once more on its own output (stripes it only weakened);
- ``half scale first`` / ``half scale after``: the network's log-correction of a 2x2-binned
  copy (wide stripes look like the training sampler's narrower ones there), upsampled and
  applied before / after the full-scale pass;
- ``log contrast xK``: the input's log-contrast around a 12-px blur raised K-fold before the
  network (a faint stripe then looks like the strong ones it does correct), the network's
  log-correction divided by K;
- ``stripe band xK``: on planes with stripe evidence, only the input's stripe-band part (the
  band of step 2, in ``log(I + eps)``) raised K-fold, the correction divided by K;
- ``notch ratio K``: the notch scales down only coefficients above K times their angular
  neighbours' power (``cap_stripe_wedge(min_ratio=K)``; default 1);
- ``no level step``: the pipeline without its last step (``spectral.keep_level``, which gives
  the unstriped majority of a plane its input intensity back), i.e. the network's own level;
- ``level step without its guard``: the level step on every plane the pipeline changes, also
  those with weak stripe evidence and a faint network correction;
- ``best single gain (oracle)``: the pipeline's output times the one factor per crop (0.85 to
  1.15) that brings it closest to the truth: how much is left to gain from the level alone.

Also the clean crops that the evidence flags (the others come back bit for bit with every
variant but ``log contrast x2``, whose changes are listed), and with ``--real`` the stripe
meter on the real striped images for the notch ratios (which is where they pay).

Usage (project venv; about 3 minutes with ``--real`` on the 2-core CPU, one torch thread)::

    PYTHONPATH=src python benchmarks/destripe_inference_variants.py \
        --data-dir ../shared/data --out out/inference_variants [--real]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _destripe_data as bd
from _results import command_line, load_average, results_parser, save_results

ROTATE_MIN_DEG = 4.0
PADS = (32, 128)
RATIOS = (2.0, 4.0, 9.0)
AMPLIFY = (1.5, 2.0)


def striped_sets(
    crops: list[bd.Crop], mode: str = "multiplicative"
) -> dict[tuple[str, str], list[np.ndarray]]:
    """The striped crops of every stripe model and type in one mode, seeded as in
    ``bench_destripe.py``."""
    seeds = {
        kind: [bd.crop_seed(2024, ti, ci) for ci in range(len(crops))]
        for ti, kind in enumerate(bd.STRIPE_TYPES)
    }
    return {
        (gen, kind): bd.striped_crops(crops, gen, kind, mode, seeds[kind])
        for gen in bd.GENERATORS
        for kind in bd.STRIPE_TYPES
    }


class Variants:
    """The network's output under each variant, in the input's units (before the pipeline's
    own steps)."""

    def __init__(self, model: str) -> None:
        from napari_restore import destripe, load_destripe_model

        self._destripe = destripe
        self.net = load_destripe_model(model, "cpu")

    def network(self, x: np.ndarray) -> np.ndarray:
        """The network alone on ``x`` (every plane, no evidence check, no clean-up)."""
        return self._destripe(
            np.ascontiguousarray(x, dtype=np.float32),
            model=self.net,
            device="cpu",
            direction="horizontal",
            output_dtype="float32",
            only_striped=False,
            cleanup=False,
        )

    @staticmethod
    def _apply(x: np.ndarray, log_correction: np.ndarray) -> np.ndarray:
        """``x`` times ``exp(log_correction)``, in the pipeline's ``log(I + eps)``."""
        from napari_restore.destripe.spectral import _from_log, _log_offset

        eps = _log_offset(x)
        return _from_log(np.log(np.maximum(x, 0) + eps), eps, log_correction, np.float32(0))

    @staticmethod
    def _log_change(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The pipeline's log-domain change from ``x`` to ``y``."""
        from napari_restore.destripe.spectral import _log_change

        return _log_change(y, x)[0]

    def rotated(self, x: np.ndarray, angle: float) -> np.ndarray:
        """The network's correction found on ``x`` rotated by ``angle`` degrees, rotated back."""
        from scipy import ndimage as ndi

        xr = ndi.rotate(x, angle, reshape=True, order=3, mode="reflect").astype(np.float32)
        change = self._log_change(xr, self.network(xr))
        back = ndi.rotate(change, -angle, reshape=True, order=1, mode="reflect")
        top, left = (back.shape[0] - x.shape[0]) // 2, (back.shape[1] - x.shape[1]) // 2
        return self._apply(x, back[top : top + x.shape[0], left : left + x.shape[1]])

    def padded(self, x: np.ndarray, pad: int) -> np.ndarray:
        """The network on ``x`` reflect-padded by ``pad`` px, cropped back."""
        return self.network(np.pad(x, pad, mode="reflect"))[pad:-pad, pad:-pad]

    def flipped(self, x: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
        """The log-corrections of ``x`` and ``n - 1`` mirror images of it, averaged."""
        flips = [(slice(None), slice(None, None, -1))]
        if n == 4:
            flips += [(slice(None, None, -1), slice(None)), (slice(None, None, -1),) * 2]
        changes = [self._log_change(x, first)]
        for f in flips:
            changes.append(self._log_change(x, self.network(x[f])[f]))
        return self._apply(x, np.mean(changes, axis=0))

    def half_scale(self, x: np.ndarray) -> np.ndarray:
        """The network's log-correction of ``x`` binned 2x2, upsampled to ``x``'s shape."""
        from scipy import ndimage as ndi

        h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
        small = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float32)
        change = self._log_change(small, self.network(small))
        up = ndi.zoom(change, (x.shape[0] / small.shape[0], x.shape[1] / small.shape[1]), order=1)
        return up[: x.shape[0], : x.shape[1]]

    def amplified(self, x: np.ndarray, k: float, wedge: Any = None) -> np.ndarray:
        """The network's log-correction of ``x`` with its log-contrast (around a 12-px blur) or,
        given the stripe ``wedge``, only its stripe-band part, raised ``k``-fold; divided by ``k``
        and applied to ``x``."""
        from scipy import ndimage as ndi

        from napari_restore.destripe.spectral import (
            BAND_MARGIN_DEG,
            BAND_MIN_STEPS,
            _band_split,
            _log_offset,
        )
        from napari_restore.stripe_meter import periodic_spectrum

        eps = _log_offset(x)
        log_x = np.log(np.maximum(x, 0) + eps).astype(np.float32)
        if wedge is None:
            part = log_x - ndi.gaussian_filter(log_x, 12.0)
        else:
            part, _ = _band_split(
                log_x, periodic_spectrum(log_x), wedge.angles, BAND_MARGIN_DEG, BAND_MIN_STEPS
            )
        xa = (np.exp(log_x + (k - 1) * part) - eps).astype(np.float32)
        return self._apply(x, self._log_change(xa, self.network(xa)) / k)

    def coarse_fine(self, x: np.ndarray, first: np.ndarray, coarse_first: bool) -> np.ndarray:
        """The half-scale correction applied before, or after, the full-scale pass."""
        if coarse_first:
            return self.network(self._apply(x, self.half_scale(x)))
        return self._apply(first, self.half_scale(first))


def finish(raw: np.ndarray, x: np.ndarray, ratio: float = 1.0, level: bool = True) -> np.ndarray:
    """The pipeline's steps after the network (``spectral.finish_plane``, with this notch
    ratio, with or without the level step)."""
    from napari_restore.destripe.spectral import finish_plane, stripe_evidence

    out = finish_plane(raw, x, stripe_evidence(x), min_ratio=ratio, level=level)
    return x if out is None else out


def finish_unguarded(raw: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The pipeline with the level step on every plane it changes (no guard)."""
    from napari_restore.destripe.spectral import keep_level

    out = finish(raw, x, level=False)
    return out if out is x else keep_level(out, x)


ORACLE_GAINS = np.exp(np.linspace(-0.15, 0.15, 61))


def mean_change(out: np.ndarray, clean: np.ndarray) -> float:
    """Change of the mean intensity (percent)."""
    return float(100 * (np.mean(out, dtype=np.float64) / np.mean(clean, dtype=np.float64) - 1))


def evaluate(v: Variants, x: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """PSNR of every variant on one striped crop."""
    from napari_restore.destripe.spectral import stripe_evidence

    raw = v.network(x)
    out = finish(raw, x)
    scores = {
        "pipeline": bd.fast_psnr(out, clean),
        "network only": bd.fast_psnr(raw, clean),
        "no level step": bd.fast_psnr(finish(raw, x, level=False), clean),
        "level step without its guard": bd.fast_psnr(finish_unguarded(raw, x), clean),
        "best single gain (oracle)": max(bd.fast_psnr(out * g, clean) for g in ORACLE_GAINS),
    }
    wedge = stripe_evidence(x)
    turn = wedge.striped and abs(wedge.angles[0]) >= ROTATE_MIN_DEG
    rotated = v.rotated(x, wedge.angles[0]) if turn else raw
    scores["rotate to stripe angle"] = bd.fast_psnr(finish(rotated, x), clean)
    for pad in PADS:
        scores[f"reflect pad {pad}"] = bd.fast_psnr(finish(v.padded(x, pad), x), clean)
    for n in (2, 4):
        scores[f"flip average {n}"] = bd.fast_psnr(finish(v.flipped(x, raw, n), x), clean)
    scores["network twice"] = bd.fast_psnr(finish(v.network(raw), x), clean)
    for coarse_first, name in ((True, "half scale first"), (False, "half scale after")):
        scores[name] = bd.fast_psnr(finish(v.coarse_fine(x, raw, coarse_first), x), clean)
    scores["log contrast x2"] = bd.fast_psnr(finish(v.amplified(x, 2.0), x), clean)
    for k in AMPLIFY:
        amp = v.amplified(x, k, wedge) if wedge.striped else raw
        scores[f"stripe band x{k:g}"] = bd.fast_psnr(finish(amp, x), clean)
    for ratio in RATIOS:
        scores[f"notch ratio {ratio:g}"] = bd.fast_psnr(finish(raw, x, ratio), clean)
    return scores


def real_images(data_dir: Path, model: str) -> list[dict[str, Any]]:
    """Stripe meter (log and linear domains) on the real striped images per notch ratio, and
    without the level step."""
    import imageio.v3 as iio
    import tifffile

    import napari_restore
    from napari_restore.destripe import spectral as sp
    from napari_restore.stripe_meter import measure_stripes

    bundled = Path(napari_restore.__file__).parent / "data" / "smartspim_striped.tif"
    images = {
        "SPIM (Tosi), 2048²": tifffile.imread(data_dir / "real_striped_spim_tosi.tif"),
        "SmartSPIM (AIND png)": iio.imread(data_dir / "real_striped_smartspim_aind.png")[..., 0],
        "SmartSPIM (bundled sample)": tifffile.imread(bundled),
    }
    net = napari_restore.load_destripe_model(model, "cpu")
    defaults = sp.finish_plane.__kwdefaults__  # what destripe() calls after the network
    rows = []
    settings = [(1.0, True), (1.0, False), *((r, True) for r in RATIOS)]
    try:
        for ratio, level in settings:
            # the default pipeline, with this notch ratio and with or without the level step
            defaults["min_ratio"], defaults["level"] = ratio, level
            for label, img in images.items():
                out = napari_restore.destripe(img, net, device="cpu", direction="horizontal")
                for domain in ("log", "linear"):
                    m = measure_stripes(img, out, domain=domain)
                    rows.append(
                        {"ratio": ratio, "level": level, "image": label, "domain": domain}
                        | m.as_dict()
                    )
                    print(
                        f"notch ratio {ratio:g}, level step {level} / {label} ({domain}): "
                        f"{m.verdict}",
                        flush=True,
                    )
    finally:
        defaults["min_ratio"], defaults["level"] = 1.0, True
    return rows


def to_markdown(res: dict[str, Any]) -> str:
    """Mean PSNR per set and variant, the flagged clean crops, the real images."""
    sets = list(res["means"])
    variants = list(res["means"][sets[0]])
    lines = [
        "# Inference-side variants of the destriping pipeline (held-out crops)",
        "",
        f"`{res['command']}`; model {res['model']}; CPU, one torch thread, load average "
        f"{res['load_average_start']} at the start; {res['seconds']:.0f} s.",
        "",
        "Mean PSNR (dB) over the 16 held-out crops; difference to the default pipeline in "
        "brackets.",
        "",
        "| variant | " + " | ".join(sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for name in variants:
        cells = []
        for s in sets:
            value, base = res["means"][s][name], res["means"][s]["pipeline"]
            cells.append(f"{value:.2f}" + ("" if name == "pipeline" else f" ({value - base:+.2f})"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Clean crops flagged by the stripe evidence (PSNR against themselves, dB):", ""]
    for name, per in res["clean_flagged"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
    if "clean_changed_by_log_contrast_x2" in res:
        lines += [
            "",
            "Clean crops that `log contrast x2` changes (every other variant returns the "
            "unflagged ones bit for bit; PSNR dB, mean change %):",
            "",
        ]
        lines += [
            f"- {name}: {p:.1f} dB, {m:+.2f} %"
            for name, (p, m) in res["clean_changed_by_log_contrast_x2"].items()
        ] or ["- none"]
    if res.get("real"):
        lines += [
            "",
            "| notch ratio | level step | image | domain | stripes removed | structure changed "
            "| median |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in res["real"]:
            removed = r["stripe_removed"]
            removed = "—" if removed is None else f"{100 * removed:.1f} %"
            lines.append(
                f"| {r['ratio']:g} | {'yes' if r.get('level', True) else 'no'} | {r['image']} "
                f"| {r['domain']} | {removed} | "
                f"{100 * r['structure_changed']:.2f} % | {100 * r['median_change']:+.1f} % |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the variants; write ``results.json`` and ``results.md`` to ``--out``."""
    ap = results_parser(__doc__)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--real", action="store_true", help="also the real images per notch ratio")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0, load0 = time.perf_counter(), load_average()
    crops = bd.load_heldout(args.data_dir)
    v = Variants(args.model)
    means: dict[str, dict[str, float]] = {}
    for (gen, kind), striped in striped_sets(crops).items():
        per = [evaluate(v, x, c.clean) for x, c in zip(striped, crops, strict=True)]
        means[f"{gen} {kind}"] = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        print(
            f"{gen} {kind}: "
            + ", ".join(f"{k} {m:.2f}" for k, m in means[f"{gen} {kind}"].items()),
            flush=True,
        )
    from napari_restore.destripe.spectral import stripe_evidence

    flagged: dict[str, dict[str, float]] = {}
    for c in crops:
        wedge = stripe_evidence(c.clean)
        if wedge.striped:
            raw = v.network(c.clean)
            flagged[c.name] = {
                "pipeline": bd.fast_psnr(finish(raw, c.clean), c.clean),
                "no level step": bd.fast_psnr(finish(raw, c.clean, level=False), c.clean),
                "pipeline, mean change %": mean_change(finish(raw, c.clean), c.clean),
                "no level step, mean change %": mean_change(
                    finish(raw, c.clean, level=False), c.clean
                ),
                "level step without its guard, mean change %": mean_change(
                    finish_unguarded(raw, c.clean), c.clean
                ),
            }
            flagged[c.name]["network twice"] = bd.fast_psnr(
                finish(v.network(raw), c.clean), c.clean
            )
            for k in AMPLIFY:
                flagged[c.name][f"stripe band x{k:g}"] = bd.fast_psnr(
                    finish(v.amplified(c.clean, k, wedge), c.clean), c.clean
                )
            for ratio in RATIOS:
                flagged[c.name][f"notch ratio {ratio:g}"] = bd.fast_psnr(
                    finish(raw, c.clean, ratio), c.clean
                )
    # The only variant that can change a clean crop without stripe evidence (through the
    # pipeline's second look): its changes, PSNR against itself (dB) and mean change (%).
    amplified_clean = {}
    for c in crops:
        out = finish(v.amplified(c.clean, 2.0), c.clean)
        if not np.array_equal(out, c.clean):
            amplified_clean[c.name] = [bd.fast_psnr(out, c.clean), mean_change(out, c.clean)]
    res: dict[str, Any] = {
        "command": command_line("destripe_inference_variants.py", argv),
        "clean_changed_by_log_contrast_x2": amplified_clean,
        "model": args.model,
        "load_average_start": load0,
        "means": means,
        "clean_flagged": flagged,
        "real": real_images(args.data_dir, args.model) if args.real else [],
    }
    res["seconds"] = time.perf_counter() - t0
    md = to_markdown(res)
    save_results(args.out, res, md)
    print(md)
    return res


if __name__ == "__main__":
    main()
