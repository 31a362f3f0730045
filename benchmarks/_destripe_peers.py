"""Classical destriping peers and their parameter sweeps, for the destriping benchmark.

The peers are optional benchmark-only packages (``benchmarks/requirements-peers.txt``); none of
them is a dependency of napari-restore, and nothing of theirs is copied here: each wrapper only
calls the package's public function and maps our [0, 1] float images to what it expects.

- ``pyvsnr`` (VSNR, Fehrenbach/Weiss/Lorenzo; AGPL-3.0): ``vsnr2d`` with Gabor filters elongated
  along the stripes (``theta`` = 0 for horizontal stripes; a set of angles for tilted ones).
- ``destripe`` (PDHG universal stripe remover; MIT): ``UniversalStripeRemover``. Its stripe
  model is vertical (plus four diagonal directions), so images are transposed before and after.
- ``pystripe`` (wavelet-FFT filter, LifeCanvas/Chung lab; MIT): ``filter_streaks``, which
  filters horizontal streaks.

Every wrapper takes a list of float32 images in [0, 1] and returns float arrays of the same
shapes. Optional pre-processing that is swept for the peers with an additive model (VSNR, PDHG):
``log_offset`` c > 0 runs the method on ``log(x + c)`` and maps back with ``exp(y) - c`` (turning
multiplicative stripes into additive ones); c = 0 runs on the intensities.

Sweeps are staged grid searches (coordinate descent over groups of parameters): each stage is a
grid over some parameters while the others stay at the best setting found so far; the best
setting over everything evaluated is kept. All evaluated settings are reported.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

Params = dict[str, Any]
Stage = dict[str, Sequence[Any]] | list[Params]  # a grid, or an explicit list of settings
RunFn = Callable[[list[np.ndarray], Params], list[np.ndarray]]


@dataclass
class Peer:
    """A classical destriping method with its wrapper and sweep.

    Attributes
    ----------
    name : str
        Label in the tables.
    package : str
        Distribution name (for the version and the import check).
    licence : str
        The package's licence.
    run : callable
        ``run(images, params) -> outputs``.
    base : dict
        Starting parameters of the sweep (the package defaults where they make sense).
    stages : callable
        ``stages(kind, quick) -> list of stages`` of the sweep for one stripe type.
    note : str
        How the wrapper maps our data to the package, in words.
    """

    name: str
    package: str
    licence: str
    run: RunFn
    base: Params
    stages: Callable[[str, bool], list[Stage]]
    note: str = ""
    version: str = field(default="", init=False)


# ---------------------------------------------------------------------------------------------
# helpers


def _to_domain(image: np.ndarray, log_offset: float) -> np.ndarray:
    return np.log(image + log_offset) if log_offset > 0 else image


def _from_domain(image: np.ndarray, log_offset: float) -> np.ndarray:
    return np.exp(image) - log_offset if log_offset > 0 else image


def _unit_affine(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Map to [0, 1] by min-max; return the mapped image and (offset, scale) to undo it."""
    lo, hi = float(image.min()), float(image.max())
    scale = hi - lo if hi > lo else 1.0
    return ((image - lo) / scale).astype(np.float32), lo, scale


# ---------------------------------------------------------------------------------------------
# VSNR (pyvsnr)


def run_vsnr(images: list[np.ndarray], p: Params) -> list[np.ndarray]:
    """VSNR with one Gabor filter per angle in ``p["thetas"]`` (all with the same sigmas)."""
    from pyvsnr import vsnr2d

    filters = [
        {
            "name": "Gabor",
            "noise_level": float(p["noise_level"]),
            "sigma": (float(p["sigma_x"]), float(p["sigma_y"])),
            "theta": float(theta),
        }
        for theta in p["thetas"]
    ]
    outs = []
    for image in images:
        # Our own min-max mapping (norm=False): pyvsnr's norm=True would also stretch the
        # output to the input's min-max range afterwards.
        x, lo, scale = _unit_affine(_to_domain(image.astype(np.float64), p["log_offset"]))
        y = vsnr2d(
            x, filters, maxit=int(p["maxit"]), beta=float(p["beta"]), algo="numpy", norm=False
        )
        outs.append(_from_domain(np.asarray(y, np.float64) * scale + lo, p["log_offset"]))
    return outs


_THETA_SETS: list[tuple[float, ...]] = [
    (0.0,),
    (-5.0, 0.0, 5.0),
    (-10.0, 0.0, 10.0),
    (-15.0, 0.0, 15.0),
    (-10.0, -5.0, 0.0, 5.0, 10.0),
    (-15.0, -7.5, 0.0, 7.5, 15.0),
    (-20.0, -10.0, 0.0, 10.0, 20.0),
    (-15.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0),
]


def vsnr_stages(kind: str, quick: bool) -> list[Stage]:
    """Noise level x stripe width x domain; stripe length x domain; tilted: angle sets x length,
    then noise level x width again; iterations x beta."""
    if quick:
        stages: list[Stage] = [
            {
                "log_offset": [0.0, 0.003, 0.1],
                "noise_level": [1.0, 10.0, 100.0],
                "sigma_y": [0.5, 1.5],
            }
        ]
        if kind == "tilted":
            stages.append({"thetas": [(0.0,), (-10.0, 0.0, 10.0)], "noise_level": [1.0, 10.0]})
        return stages
    # Ranges widened after a first full run ended on their edges (noise level, length, log
    # offset, iterations, beta; noise level up to 3000 for additive stripes).
    levels = [0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0]
    stages = [
        {"log_offset": [0.0, 0.003, 0.1], "noise_level": levels, "sigma_y": [0.5, 1.0, 2.0]},
        {
            "sigma_x": [10.0, 30.0, 100.0, 300.0, 3000.0],
            "log_offset": [0.0, 0.0003, 0.001, 0.003, 0.01, 0.1],
        },
    ]
    if kind == "tilted":
        # Angle set and filter length jointly (a short filter tolerates a wrong angle), then
        # the strength and width again for the chosen filters.
        stages += [
            {"thetas": _THETA_SETS, "sigma_x": [10.0, 30.0, 100.0, 300.0]},
            {"noise_level": levels, "sigma_y": [0.5, 1.0, 2.0, 4.0]},
        ]
    stages.append({"maxit": [20, 100, 300], "beta": [10.0, 100.0, 1000.0]})
    return stages


# ---------------------------------------------------------------------------------------------
# PDHG universal stripe remover (destripe)


def run_pdhg(images: list[np.ndarray], p: Params) -> list[np.ndarray]:
    """PDHG on the transposed images (its main stripe direction is vertical), batched by shape.

    Each image is min-max normalised to [0, 1] first, as ``destripe.destripe`` does, but kept in
    float32 (``destripe.destripe`` works in float64, ~2x slower on CPU for the same result).
    """
    import torch
    from destripe import UniversalStripeRemover

    remover = UniversalStripeRemover(mu1=float(p["mu1"]), mu2=float(p["mu2"]), device="cpu")
    outs: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image.shape, []).append(i)
    for idx in groups.values():
        mapped = [
            _unit_affine(np.ascontiguousarray(_to_domain(images[i], p["log_offset"]).T))
            for i in idx
        ]
        batch = torch.from_numpy(np.stack([m[0] for m in mapped]))
        clean = remover.process(batch, iterations=int(p["iterations"]), tol=float(p["tol"]))
        for k, i in enumerate(idx):
            _, lo, scale = mapped[k]
            y = clean[k].numpy().astype(np.float64).T * scale + lo
            outs[i] = _from_domain(y, p["log_offset"])
    return [o for o in outs if o is not None]


def pdhg_stages(kind: str, quick: bool) -> list[Stage]:
    """TV weight x stripe L1 weight; domain; iterations x stopping tolerance (package defaults:
    500 iterations, tol 1e-5)."""
    if quick:
        return [{"mu1": [0.003, 0.03, 0.1], "mu2": [0.003, 0.03]}]
    return [
        {
            "mu1": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.33],
            "mu2": [0.0003, 0.003, 0.03, 0.3],
        },
        {"log_offset": [0.0, 0.003, 0.01, 0.1]},
        {"iterations": [100, 300, 500], "tol": [1e-5, 0.0]},
    ]


# ---------------------------------------------------------------------------------------------
# pystripe


def run_pystripe(images: list[np.ndarray], p: Params) -> list[np.ndarray]:
    """``filter_streaks`` on the image scaled to ``p["scale"]`` (it returns uint16).

    ``sigma1`` filters the foreground, ``sigma2`` the background (above/below the Otsu
    threshold); equal values give its single-band filter.
    """
    from pystripe.core import filter_streaks

    scale = float(p["scale"])
    return [
        np.asarray(
            filter_streaks(
                image.astype(np.float64) * scale,
                sigma=[float(p["sigma1"]), float(p["sigma2"])],
                level=int(p["level"]),
                wavelet=str(p["wavelet"]),
            ),
            dtype=np.float64,
        )
        / scale
        for image in images
    ]


def pystripe_stages(kind: str, quick: bool) -> list[Stage]:
    """Single-band sigma x wavelet x level; then dual band (sigma1, sigma2); then input scale."""
    sigmas = [1.0, 4.0, 16.0]
    if not quick:
        sigmas = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
    wavelets = ["db3", "sym4"] if quick else ["db1", "db2", "db3", "db5", "sym4", "coif2"]
    levels = [0] if quick else [0, 2, 4, 6]
    single: list[Params] = [
        {"sigma1": s, "sigma2": s, "wavelet": w, "level": lv}
        for s, w, lv in itertools.product(sigmas, wavelets, levels)
    ]
    if quick:
        return [single]
    band = [0.0, 0.5, 1.0, 4.0, 16.0, 64.0, 256.0]
    return [single, {"sigma1": band, "sigma2": band}, {"scale": [255.0, 4095.0, 65535.0]}]


# ---------------------------------------------------------------------------------------------


PEERS: dict[str, Peer] = {
    "pyvsnr": Peer(
        name="pyvsnr (VSNR)",
        package="pyvsnr",
        licence="AGPL-3.0",
        run=run_vsnr,
        base={
            "noise_level": 10.0,
            "sigma_x": 300.0,
            "sigma_y": 1.0,
            "thetas": (0.0,),
            "maxit": 20,
            "beta": 10.0,
            "log_offset": 0.0,
        },
        stages=vsnr_stages,
        note="vsnr2d(algo='numpy', norm=False) on our own min-max mapping; Gabor filters "
        "(sigma_x along the stripe, sigma_y across), theta in degrees from the x axis",
    ),
    "destripe": Peer(
        name="destripe (PDHG)",
        package="destripe",
        licence="MIT",
        run=run_pdhg,
        base={"mu1": 0.33, "mu2": 0.003, "iterations": 100, "tol": 1e-5, "log_offset": 0.0},
        stages=pdhg_stages,
        note="UniversalStripeRemover.process on transposed, min-max normalised float32 images, "
        "batched per image shape, CPU",
    ),
    "pystripe": Peer(
        name="pystripe (wavelet-FFT)",
        package="pystripe",
        licence="MIT",
        run=run_pystripe,
        base={"sigma1": 16.0, "sigma2": 16.0, "wavelet": "db3", "level": 0, "scale": 65535.0},
        stages=pystripe_stages,
        note="pystripe.core.filter_streaks on the image times `scale` (uint16 output); "
        "level 0 = the maximum wavelet level",
    ),
}


def available_peers(names: Sequence[str]) -> tuple[list[Peer], list[str]]:
    """The requested peers that import, and notes on those that do not."""
    modules = {"pyvsnr": "pyvsnr", "destripe": "destripe", "pystripe": "pystripe.core"}
    found, notes = [], []
    for name in names:
        peer = PEERS[name]
        try:
            __import__(modules[name])
            peer.version = metadata.version(peer.package)
        except Exception as exc:  # any import failure just skips the peer
            notes.append(f"peer {name} skipped: cannot import it ({type(exc).__name__}: {exc})")
            continue
        found.append(peer)
    return found, notes


def settings_key(p: Params) -> str:
    """Canonical text of a parameter setting (tuples become lists)."""
    return json.dumps(p, sort_keys=True, default=list)


@dataclass
class SweepResult:
    """Outcome of a staged sweep for one peer and one stripe type."""

    best: Params
    best_score: float
    history: list[dict[str, Any]]
    seconds: float


def staged_sweep(
    evaluate: Callable[[Params], float],
    base: Params,
    stages: list[Stage],
    log: Callable[[str], None] | None = None,
) -> SweepResult:
    """Maximise ``evaluate`` by successive grid searches (see the module docstring).

    Parameters
    ----------
    evaluate : callable
        ``evaluate(params) -> score`` (mean PSNR over the crops); higher is better.
    base : dict
        Starting setting; every stage overrides some of its keys.
    stages : list
        Each a grid ``{key: values}`` or an explicit list of partial settings.
    log : callable, optional
        Receives one line per stage.
    """
    t0 = time.perf_counter()
    scores: dict[str, tuple[float, Params]] = {}
    history: list[dict[str, Any]] = []
    best = dict(base)
    for number, stage in enumerate(stages, 1):
        if isinstance(stage, dict):
            keys = list(stage)
            combos = itertools.product(*stage.values())
            partials = [dict(zip(keys, combo, strict=True)) for combo in combos]
        else:
            partials = list(stage)
        for partial in partials:
            setting = {**best, **partial}
            key = settings_key(setting)
            if key in scores:
                continue
            t1 = time.perf_counter()
            score = evaluate(setting)
            scores[key] = (score, setting)
            history.append(
                {
                    "stage": number,
                    "params": setting,
                    "mean_psnr": score,
                    "seconds": time.perf_counter() - t1,
                }
            )
        best_score, best = max(scores.values(), key=lambda sp: sp[0])
        best = dict(best)
        if log:
            log(f"  stage {number}: {len(partials)} settings, best {best_score:.2f} dB {best}")
    return SweepResult(best, best_score, history, time.perf_counter() - t0)
