"""Classical denoising baselines for ``bench_denoise.py``, each swept over its main parameter.

Every function takes a ``(T, Y, X)`` float32 stack and yields ``(label, denoised)`` for each
setting, so the benchmark can score all settings against the truth and keep the best of each
family (an oracle choice: the most favourable setting a user could have found by hand).

- 3D Gaussian blur, σ swept in space and (separately) in time (scipy.ndimage);
- temporal running mean over a window of frames (scipy.ndimage.uniform_filter1d);
- non-local means per frame (scikit-image, ``h`` a multiple of the estimated noise σ);
- total variation in 3D (scikit-image Chambolle, weight a multiple of the noise σ);
- BM3D per frame (the ``bm3d`` package, when it is installed; it is not a dependency of
  napari-restore, and its licence is for non-commercial use), σ a multiple of the estimate.

The noise σ is estimated from the data (``skimage.restoration.estimate_sigma``, wavelet MAD);
no baseline is told the true noise.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage

Result = Iterator[tuple[str, np.ndarray]]


def noise_sigma(stack: np.ndarray) -> float:
    """Mean over a few frames of scikit-image's wavelet estimate of the Gaussian noise σ."""
    from skimage.restoration import estimate_sigma

    frames = stack[:: max(1, stack.shape[0] // 8)]
    return float(np.mean([estimate_sigma(f) for f in frames]))


def gaussian(stack: np.ndarray, quick: bool = False) -> Result:
    sig_xy = (0.75, 1.0, 1.5) if quick else (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    sig_t = (0.0, 1.0) if quick else (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
    for s in sig_xy:
        for t in sig_t:
            yield f"gaussian sxy={s} st={t}", ndimage.gaussian_filter(stack, (t, s, s))


def running_mean(stack: np.ndarray, quick: bool = False) -> Result:
    for w in (3, 5) if quick else (2, 3, 5, 7, 9):
        yield f"running mean w={w}", ndimage.uniform_filter1d(stack, w, axis=0, mode="nearest")


def nl_means(stack: np.ndarray, sigma: float, quick: bool = False) -> Result:
    from skimage.restoration import denoise_nl_means

    for f in (0.8,) if quick else (0.6, 0.9, 1.2):
        out = np.stack(
            [
                denoise_nl_means(
                    frame,
                    h=f * sigma,
                    sigma=sigma,
                    patch_size=5,
                    patch_distance=6,
                    fast_mode=True,
                )
                for frame in stack
            ]
        ).astype(np.float32)
        yield f"nl-means h={f}σ", out


def total_variation(stack: np.ndarray, sigma: float, quick: bool = False) -> Result:
    from skimage.restoration import denoise_tv_chambolle

    for f in (1.0,) if quick else (0.5, 1.0, 2.0, 3.0):
        out = denoise_tv_chambolle(stack, weight=f * sigma).astype(np.float32)
        yield f"tv-3d weight={f}σ", out


def bm3d_frames(stack: np.ndarray, sigma: float, quick: bool = False) -> Result:
    try:
        import bm3d
    except ImportError:
        return
    # One σ even in the full sweep: BM3D is slow on a CPU, and σ̂ is its intended input.
    del quick
    for f in (1.0,):
        out = np.stack([bm3d.bm3d(frame, f * sigma) for frame in stack]).astype(np.float32)
        yield f"bm3d σ={f}σ̂", out


FAMILIES = ("gaussian", "running mean", "nl-means", "tv-3d", "bm3d")


def all_baselines(stack: np.ndarray, quick: bool = False, skip: tuple[str, ...] = ()) -> Result:
    """Every setting of every family (except the families in ``skip``)."""
    x = np.asarray(stack, dtype=np.float32)
    sigma = noise_sigma(x)
    runs = {
        "gaussian": lambda: gaussian(x, quick),
        "running mean": lambda: running_mean(x, quick),
        "nl-means": lambda: nl_means(x, sigma, quick),
        "tv-3d": lambda: total_variation(x, sigma, quick),
        "bm3d": lambda: bm3d_frames(x, sigma, quick),
    }
    for family, run in runs.items():
        if family not in skip:
            yield from run()
