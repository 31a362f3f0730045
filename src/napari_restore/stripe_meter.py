"""A no-reference stripe meter: what a destriper did to an image, without a ground truth.

On their own data users have no clean reference, so MAE / PSNR / SSIM cannot say whether a
destriping run helped. This module compares an input image with its restored version and
reports, plane by plane:

``stripe_removed``
    Share of the input's *stripe energy* that is gone from the result: ``1 - E_out / E_in``,
    where ``E`` is the excess power inside the stripe wedge of the spectrum over what the
    angular neighbours at the same spatial frequency hold. Negative when stripes were added;
    NaN when the input shows no stripe signal (then there is nothing to remove).
``structure_changed``
    Power of the removed component ``input - restored`` *outside* the stripe wedge (the mean,
    i.e. the DC term, excluded), relative to the input's power there. 0 for a perfect
    destriper, and a Gaussian blur or a brightened nucleus raises it.
``median_change``, ``mean_change``
    Relative change of the median and the mean intensity over the foreground of the input.

How the numbers are made
------------------------
1. **Boundary.** The FFT treats an image as periodic, so the jump between opposite borders
   draws a bright cross along both frequency axes exactly where horizontal and vertical stripes
   live. Each plane is replaced by its periodic component (L. Moisan, "Periodic plus smooth image
   decomposition", J. Math. Imaging Vis. 39(2), 161-179, 2011, doi:10.1007/s10851-010-0227-1),
   which is linear, so ``per(input) - per(restored) = per(input - restored)``.
2. **Direction and angle.** Stripes are long and straight, so a stripe at angle θ from the x
   axis puts its power on the line through the origin perpendicular to it: horizontal stripes
   (elongated along x) on the ``k_x = 0`` axis, tilted ones on that axis rotated by θ. The input's
   power is divided by the geometric mean of its ring (same spatial frequency), and the mean of
   that ratio is taken in angle bins of 0.25° (wider for planes under about 500 px, so that a
   bin holds 1.5 frequency steps at the outer radius), over all angles, between 4 frequency
   steps and 0.45 cycles/pixel. Bins within ``max_angle`` (default 30°) of the x axis
   (horizontal stripes) or of the y axis (vertical stripes) that stand out from the whole
   profile (above its median + 8 MAD and at least 1.5 times its median) are stripe angles; the
   wedge is every run of such bins, widened by 0.5° and by 0.75 frequency steps (so that low
   frequencies, where a degree is less than a pixel, are still covered). Stripes at several
   angles give several runs.
   ``direction="auto"`` takes the family with stripe lines and the larger stripe energy.
3. **Stripe energy.** In each ring one frequency step wide, the expected power of a wedge pixel
   is the mean power of the ring's other pixels (at least 2° and 2 frequency steps away from the
   wedge), leaving out those above 20 times the ring's geometric mean: other bright lines, spots,
   and the leakage of a strong stripe along the axes through it. ``E`` is the wedge power minus
   that expectation, summed over the rings (from the second on) where the *input's* wedge
   exceeds it by more than 3 standard deviations (``3 sqrt(n) x expected`` for ``n`` wedge
   pixels): image content has most of its power in the few low-frequency rings, and their
   noisy excesses would otherwise swamp the stripes. The restored image's ``E`` is its excess
   over its own neighbours on the same wedge and rings (a negative sum counts as 0).
4. **Foreground.** Otsu's threshold (scikit-image) of the input smoothed with a Gaussian of
   sigma 2 px (so that noise and thin stripes do not fragment the mask); when that leaves fewer
   than 1 % of the pixels, or the plane is constant, the whole plane is used.

The same removal is also reported on the stripe rings from the eighth on only
(``fine_stripe_removed``: stripes with periods under an eighth of the plane's longer edge),
with the share of the input's stripe energy below that scale (``coarse_share``): on a large
plane the lowest stripe rings are the scale of the sample itself, and a round sample's outline
can hold much of the "stripe energy" there (46 % on the real 2048² SPIM plane, one ring of
three wedge pixels), which a destriper should leave alone.

Stacks ``(..., Y, X)`` are measured plane by plane (dask / zarr arrays are read one plane at a
time). The whole-stack numbers pool the planes: energies and powers are summed over planes
before the ratios are taken, the mean over all foreground voxels, and the median over a strided
sample of at most 200 000 foreground voxels per plane.

Which domain
------------
By default (``domain="linear"``) the spectra are those of the intensities, which suits
additive stripes (bright streaks of scattered light, offsets). Attenuation stripes
(``I * (1 - A*S)``: light-sheet shadows) multiply the image, and then the removed component of
an exact removal is the stripe field times the image, part of which lies outside the wedge.
``domain="log"`` compares the spectra of ``log(I + eps)`` (``eps`` is :data:`LOG_OFFSET`, 1 %, of
each input plane's 1st-99.9th percentile range, plus its negative part), where attenuation
stripes are an additive stripe field; the intensity changes are still measured on the
intensities. On the synthetic validation (``benchmarks/bench_stripe_meter.py``: 6 clean crops,
8 stripe types, 12 outputs each) an exact removal of multiplicative stripes reads as a median
structure change of 2.2-8.1 % in the linear domain and 0.1-2.6 % in the log domain, and the
rank correlation of "stripe removed - 10 x structure changed" with the true PSNR gain rises from
0.20-0.49 to 0.63-0.88 for the five multiplicative stripe types; for additive stripes the log
domain reads an exact removal as 8-20 % structure change, and the linear domain ranks two of
the three additive types far better (0.81 and 0.84 against 0.52 and 0.01; short additive
segments 0.48 against 0.63).

Energies are power (squared amplitude): removing 84 % of the stripe energy leaves 40 % of the
stripe amplitude, and a result that is merely 10 % brighter (a gain of 1.1) has 21 % more
stripe energy and 1 % structure change (an offset changes neither: the DC term is left out).
In the linear domain a perfect destriper of strong attenuation stripes shows a structure change
of a few percent (see "Which domain"; the log domain does not). Spectra are computed in float32
(sums in float64); a 2048² plane takes about 2 s on one CPU core.
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from napari_restore.core.arrays import finite_float64
from napari_restore.core.files import write_csv_rows
from napari_restore.errors import RestoreInputError

StripeDirection = Literal["auto", "horizontal", "vertical"]
MeterDomain = Literal["linear", "log"]
DOMAINS: tuple[str, ...] = get_args(MeterDomain)

MIN_PLANE = 16  # smallest plane edge the meter accepts (a spectrum needs a few rings)
BIN_DEG = 0.25  # finest angle bin of the angular power profile
WEDGE_MARGIN_DEG = 0.5  # wedge widening around the runs of stripe bins
WEDGE_MIN_STEPS = 0.75  # wedge half-width floor, in frequency steps
GAP_DEG, GAP_STEPS = 2.0, 2.0  # neighbours start this far from the wedge
PEAK_MAD, PEAK_RATIO = 8.0, 1.5  # a stripe bin: above median + 8 MAD and 1.5 x the median
RHO_MIN_STEPS, RHO_MAX = 4.0, 0.45  # radii used for finding angles (steps, cycles/pixel)
MIN_FOREGROUND = 0.01
MEDIAN_SAMPLE = 200_000
# Below this mean excess of the wedge over its neighbours the stripe signal counts as absent.
MIN_RING = 2  # rings 0 and 1 (the mean and the image-size scale) are not stripes
SIG_RING = 3.0  # a ring counts when its wedge excess exceeds this many standard deviations
# Stripe rings from this one up hold periods under an eighth of the plane's longer edge: "fine"
# stripes. Below it lies the scale of the sample itself, where a round sample's outline can put
# a single low ring into the wedge (on the real SPIM plane one ring of three wedge pixels, a
# 512-px sinusoid, held 46 % of the input's stripe energy). The destriper's clean-up starts here
# too. The verdict names the fine stripes' removal when the coarse rings hold at least
# COARSE_NOTE_SHARE of the input's stripe energy and it differs from the whole's by at least
# FINE_NOTE_GAP.
FINE_MIN_RING = 8
COARSE_NOTE_SHARE = 0.25
FINE_NOTE_GAP = 0.10
MIN_CONTRAST = 0.02
TRIM_GEO = 20.0
# Offset of log(I + eps) in the log domain, as a share of the input plane's 1st-99.9th
# percentile range (plus its negative part): bright enough that the noise of a black background
# is not blown up, small enough that attenuation of dim signal still multiplies.
LOG_OFFSET = 0.01


def log_offset(plane: np.ndarray) -> float:
    """``eps`` of ``log(I + eps)`` for a plane: :data:`LOG_OFFSET` of its 1st-99.9th
    percentile range, plus its negative part."""
    x = np.asarray(plane)
    lo, hi = np.percentile(x, (1.0, 99.9))
    return float(LOG_OFFSET * max(float(hi - lo), 1e-12) + max(0.0, -float(x.min())))


@dataclass(frozen=True)
class StripeMeasure:
    """What a destriping run did to an image, measured without a ground truth.

    Fractions are plain ratios (0.84 means 84 %). For stacks the top-level values pool all
    planes and ``per_plane`` holds one value per plane (planes in C order of the leading axes).

    Attributes
    ----------
    stripe_removed : float
        Share of the input's stripe energy (excess power in the stripe wedge) gone from the
        result; negative if stripes were added, NaN if the input shows no stripe signal.
    structure_changed : float
        Power of ``input - restored`` outside the wedge (DC excluded) over the input's there.
    median_change, mean_change : float
        Relative change of the median / mean intensity over the input's foreground.
    direction : str
        ``"horizontal"`` (stripes along x) or ``"vertical"`` (along y); for stacks, the one
        most planes had.
    angle : float
        Angle of the strongest stripe line in degrees from the x axis (horizontal; positive
        when the row index grows with the column) or from the y axis (vertical; positive when
        the column grows with the row). For stacks, the median over planes with stripes.
    angles : tuple of float
        All stripe angles found (peaks of the angular profile; first plane with stripes).
    stripe_contrast : float
        How striped the input is: its stripe energy over the power its wedge would hold
        without stripes, on the rings with stripes (0: none; 1: twice the expected power).
    foreground_fraction : float
        Share of the pixels used for the intensity changes.
    max_angle : float
        The angle search range (degrees either side of the axis).
    fine_stripe_removed : float
        As ``stripe_removed``, on the stripe rings from :data:`FINE_MIN_RING` up only: stripes
        with periods under an eighth of the plane's longer edge (NaN when the input has no
        stripe signal there).
    coarse_share : float
        Share of the input's stripe energy on the rings below :data:`FINE_MIN_RING` (the
        scale of the sample itself, where its outline can read as stripe energy).
    per_plane : dict of str to numpy.ndarray
        For stacks: ``stripe_removed``, ``fine_stripe_removed``, ``structure_changed``,
        ``median_change``, ``mean_change``, ``angle``, ``stripe_contrast`` per plane. Empty
        for 2D images.
    plane_directions : tuple of str
        For stacks: the direction found in each plane.
    planes : tuple of int
        For stacks: the planes measured (flat C-order indices of the leading axes); all of them
        unless ``max_planes`` asked for fewer.
    shape : tuple of int
        Shape of the compared arrays.
    domain : str
        ``"linear"`` or ``"log"``: the values whose spectra were compared
        (:func:`measure_stripes`).
    """

    stripe_removed: float
    structure_changed: float
    median_change: float
    mean_change: float
    direction: str
    angle: float
    angles: tuple[float, ...]
    stripe_contrast: float
    foreground_fraction: float
    max_angle: float
    fine_stripe_removed: float = math.nan
    coarse_share: float = 0.0
    per_plane: dict[str, np.ndarray] = field(default_factory=dict)
    plane_directions: tuple[str, ...] = ()
    shape: tuple[int, ...] = ()
    planes: tuple[int, ...] = ()
    domain: str = "linear"

    @property
    def stripes_found(self) -> bool:
        """Whether the input showed a stripe signal (else ``stripe_removed`` is NaN)."""
        return not math.isnan(self.stripe_removed)

    @property
    def verdict(self) -> str:
        """One plain-language line, e.g. "stripes reduced by 84 %, structure changed 0.6 %, …".

        When the input's stripe energy lies largely at the sample's own scale
        (``coarse_share`` of at least :data:`COARSE_NOTE_SHARE`) and the fine stripes fared
        differently (by :data:`FINE_NOTE_GAP` or more), their removal follows in brackets:
        "stripes reduced by 70 % (finer than 1/8 of the image: 99 %), …"."""
        if not self.stripes_found:
            stripes = "no stripes found in the input"
        elif self.stripe_removed >= 0:
            stripes = f"stripes reduced by {_pct(self.stripe_removed)} %"
        else:
            stripes = f"stripes INCREASED by {_pct(-self.stripe_removed)} %"
        if (
            self.stripes_found
            and self.coarse_share >= COARSE_NOTE_SHARE
            and abs(self.fine_stripe_removed - self.stripe_removed) >= FINE_NOTE_GAP
        ):
            fine = self.fine_stripe_removed
            word = "" if fine >= 0 else "INCREASED by "
            stripes += f" (finer than 1/8 of the image: {word}{_pct(abs(fine))} %)"
        intensity = "n/a" if math.isnan(self.median_change) else _signed_pct(self.median_change)
        return (
            f"{stripes}, structure changed {_pct(self.structure_changed)} %, "
            f"intensity {intensity} %"
        )

    def as_dict(self, per_plane: bool = True) -> dict[str, Any]:
        """JSON-ready dictionary (NaN becomes ``None``)."""
        out: dict[str, Any] = {
            "stripe_removed": _num(self.stripe_removed),
            "structure_changed": _num(self.structure_changed),
            "median_change": _num(self.median_change),
            "mean_change": _num(self.mean_change),
            "direction": self.direction,
            "angle": _num(self.angle),
            "angles": [float(a) for a in self.angles],
            "stripe_contrast": _num(self.stripe_contrast),
            "foreground_fraction": float(self.foreground_fraction),
            "max_angle": float(self.max_angle),
            "fine_stripe_removed": _num(self.fine_stripe_removed),
            "coarse_share": float(self.coarse_share),
            "verdict": self.verdict,
            "shape": list(self.shape),
            "domain": self.domain,
        }
        if per_plane and self.per_plane:
            out["per_plane"] = {k: [_num(v) for v in vals] for k, vals in self.per_plane.items()}
            out["plane_directions"] = list(self.plane_directions)
            out["planes"] = list(self.planes)
        return out


def _num(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _pct(fraction: float) -> str:
    """A share in percent with 2 significant digits below 10 % (0.6 %), else whole numbers."""
    p = 100.0 * fraction
    if abs(p) < 0.01:
        return "0"  # rounding noise of an unchanged image, not a finding
    return f"{p:.2g}" if abs(p) < 10 else f"{p:.0f}"


def _signed_pct(fraction: float) -> str:
    s = _pct(fraction)
    return s if s.startswith("-") else f"+{s}"


# -- validation ---------------------------------------------------------------------------------
def validate_stripe_pair(input: Any, restored: Any, *, rgb: bool | None = None) -> None:
    """Check that an input and its restored version can be compared (nothing is read).

    Raises
    ------
    RestoreInputError
        For mismatched or empty shapes, complex, non-numeric or RGB data, planes smaller than
        16 x 16 pixels.
    """
    for name, a in (("input", input), ("restored image", restored)):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise RestoreInputError(
                f"The {name} is not an array (got {type(a).__name__}); pass numpy, dask or zarr."
            )
        dtype = np.dtype(a.dtype)
        if dtype.kind == "c":
            raise RestoreInputError(f"The {name} is complex ({dtype}); pass magnitudes instead.")
        if dtype.kind not in "buif":
            raise RestoreInputError(f"The {name} has dtype {dtype}; numeric data are needed.")
        shape = tuple(int(s) for s in a.shape)
        if 0 in shape:
            raise RestoreInputError(f"The {name} is empty (shape {shape}).")
        looks_rgb = len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4
        if rgb or (rgb is None and looks_rgb):
            raise RestoreInputError(
                f"The {name} looks like an RGB(A) colour image (shape {shape}); the stripe "
                "meter needs greyscale data: split the channels or convert to grey first."
            )
        if len(shape) < 2 or min(shape[-2:]) < MIN_PLANE:
            raise RestoreInputError(
                f"The {name} has shape {shape}; the stripe meter needs planes of at least "
                f"{MIN_PLANE} x {MIN_PLANE} pixels."
            )
    if tuple(input.shape) != tuple(restored.shape):
        raise RestoreInputError(
            f"Shape mismatch: input {tuple(input.shape)} vs restored {tuple(restored.shape)}. "
            "Compare an image with its own restored version (same size)."
        )


def _float_plane(plane: Any, name: str) -> np.ndarray:
    return finite_float64(
        plane,
        f"The {name} contains NaN or infinite values; replace them (e.g. with np.nan_to_num) "
        "before measuring stripes.",
    )


# -- spectra ------------------------------------------------------------------------------------
def periodic_spectrum(plane: np.ndarray) -> np.ndarray:
    """Half-plane FFT (``rfft2``) of the periodic component of a plane (Moisan 2011).

    The smooth component ``s`` solves ``Δs = v`` for the boundary image ``v`` (the jumps
    between opposite borders); ``v`` is non-zero on the border only, so its FFT comes from two
    1D FFTs: ``V(q, r) = A(r) (1 - e^{2πiq/M}) + B(q) (1 - e^{2πir/N})`` with
    ``a = u[-1] - u[0]`` (rows) and ``b = u[:, -1] - u[:, 0]`` (columns).

    Parameters
    ----------
    plane : numpy.ndarray
        ``(M, N)`` float image.

    Returns
    -------
    numpy.ndarray
        ``(M, N // 2 + 1)`` complex spectrum of ``plane - s``; the DC term is the plane's sum.
    """
    m, n = plane.shape
    u_hat = sfft.rfft2(plane)
    a_hat = sfft.rfft(plane[-1, :] - plane[0, :])  # (N//2+1,)
    b_hat = sfft.fft(plane[:, -1] - plane[:, 0])  # (M,)
    q = np.arange(m)[:, None]
    r = np.arange(n // 2 + 1)[None, :]
    v_hat = a_hat[None, :] * (1 - np.exp(2j * np.pi * q / m)) + b_hat[:, None] * (
        1 - np.exp(2j * np.pi * r / n)
    )
    denom = 2 * np.cos(2 * np.pi * q / m) + 2 * np.cos(2 * np.pi * r / n) - 4
    denom[0, 0] = 1.0
    s_hat = v_hat / denom
    s_hat[0, 0] = 0.0
    return u_hat - s_hat


@dataclass(frozen=True)
class _Geometry:
    """Per-shape frequency geometry of the half-plane spectrum (cached)."""

    weight: np.ndarray  # 2 for columns standing for a conjugate pair, else 1
    rho: np.ndarray  # radius, cycles/pixel
    theta_h: np.ndarray  # stripe angle (deg) a pixel stands for if stripes are horizontal
    theta_v: np.ndarray  # ... if vertical
    rsin_h: np.ndarray  # rho * sin(theta_h), rho * cos(theta_h): distances to tilted lines
    rcos_h: np.ndarray
    rsin_v: np.ndarray
    rcos_v: np.ndarray
    ring: np.ndarray  # ring index, rings one frequency step wide
    n_rings: int
    step: float  # frequency step (cycles/pixel), the coarser of the two axes
    dc: np.ndarray  # mask of the DC term


@lru_cache(maxsize=8)
def _geometry(m: int, n: int) -> _Geometry:
    fy = np.fft.fftfreq(m)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    weight = np.full((m, n // 2 + 1), 2.0)
    weight[:, 0] = 1.0
    if n % 2 == 0:
        weight[:, -1] = 1.0
    rho = np.hypot(fy, fx)
    # Frequency direction phi (deg, in [0, 180)): a stripe at angle t from the x axis has its
    # power along phi = 90 + t; a vertical stripe at angle a from the y axis along phi = -a.
    phi = np.degrees(np.arctan2(np.broadcast_to(fy, rho.shape), np.broadcast_to(fx, rho.shape)))
    theta_h = (phi - 90.0 + 90.0) % 180.0 - 90.0
    theta_v = (-phi + 90.0) % 180.0 - 90.0
    step = max(1.0 / m, 1.0 / n)
    ring = np.rint(rho / step).astype(np.int64)
    dc = rho == 0
    th, tv = np.radians(theta_h), np.radians(theta_v)
    return _Geometry(
        weight=weight,
        rho=rho,
        theta_h=theta_h.astype(np.float32),
        theta_v=theta_v.astype(np.float32),
        rsin_h=(rho * np.sin(th)).astype(np.float32),
        rcos_h=(rho * np.cos(th)).astype(np.float32),
        rsin_v=(rho * np.sin(tv)).astype(np.float32),
        rcos_v=(rho * np.cos(tv)).astype(np.float32),
        ring=ring,
        n_rings=int(ring.max()) + 1,
        step=step,
        dc=dc,
    )


def _log_power(power: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(power, np.float32(1e-30)))


def _ring_log_mean(
    log_power: np.ndarray, ring: np.ndarray, mask: np.ndarray, n_rings: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of log power per ring over ``mask`` and the pixel counts."""
    rings = ring[mask]
    counts = np.bincount(rings, minlength=n_rings)
    sums = np.bincount(rings, weights=log_power[mask], minlength=n_rings)
    return sums / np.maximum(counts, 1), counts


@dataclass(frozen=True)
class _Wedge:
    direction: str
    angles: tuple[float, ...]  # peak angles, strongest first
    intervals: tuple[tuple[float, float], ...]  # angle runs (deg) of the wedge
    strength: float  # peak height of the angular profile over its median


def _angle_profile(
    power: np.ndarray, log_power: np.ndarray, geo: _Geometry, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ring-normalised power per angle bin, over all angles ([-90, 90) degrees)."""
    usable = (~geo.dc) & (geo.rho >= RHO_MIN_STEPS * geo.step) & (geo.rho <= RHO_MAX)
    log_mean, _ = _ring_log_mean(log_power, geo.ring, usable, geo.n_rings)
    base = np.exp(log_mean)
    ratio = power[usable] / np.maximum(base[geo.ring[usable]], 1e-300)
    # Bins narrower than 1.5 frequency steps at the outer radius hold too few pixels to tell a
    # line from the grid's own directions: small images get wider bins.
    outer = RHO_MAX / geo.step
    bin_deg = 90.0 / round(90.0 / max(BIN_DEG, math.degrees(1.5 / outer)))  # 0 is a centre
    n_bins = round(180.0 / bin_deg)
    centres = -90.0 + bin_deg * np.arange(n_bins)
    index = np.rint((theta[usable] + 90.0) / bin_deg).astype(np.int64) % n_bins
    sums = np.bincount(index, weights=ratio, minlength=n_bins)
    num = np.bincount(index, minlength=n_bins)
    profile = np.where(num > 0, sums / np.maximum(num, 1), np.nan)
    return centres, profile


def _find_wedge(
    power: np.ndarray,
    log_power: np.ndarray,
    geo: _Geometry,
    direction: str,
    max_angle: float,
    peak_mad: float = PEAK_MAD,
    peak_ratio: float = PEAK_RATIO,
) -> tuple[_Wedge, bool]:
    """The stripe wedge of one family (horizontal or vertical) and whether peaks stood out."""
    theta = geo.theta_h if direction == "horizontal" else geo.theta_v
    centres, profile = _angle_profile(power, log_power, geo, theta)
    valid = np.isfinite(profile)
    if not valid.any():
        return _Wedge(direction, (0.0,), ((-WEDGE_MARGIN_DEG, WEDGE_MARGIN_DEG),), 0.0), False
    # The statistics come from all angles, so that stripes spread over the whole search range
    # (tilted stripes of many angles) still stand out; only the search range can hold stripes.
    med = float(np.median(profile[valid]))
    mad = float(np.median(np.abs(profile[valid] - med)))
    threshold = max(med + peak_mad * 1.4826 * mad, peak_ratio * med)
    prof = np.where(valid & (np.abs(centres) <= max_angle), profile, -np.inf)
    best = int(np.argmax(prof))
    strength = float(prof[best] / med) if med > 0 else 0.0
    above = prof > threshold
    if not above.any():
        # No stripe line stands out: keep a nominal wedge on the axis so that the structure
        # share still leaves the axis out consistently.
        iv = ((-WEDGE_MARGIN_DEG, WEDGE_MARGIN_DEG),)
        return _Wedge(direction, (0.0,), iv, strength), False
    # Runs of consecutive above-threshold bins become the wedge; their maxima are the angles.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2] - 1, strict=True))
    peaks = sorted(runs, key=lambda r: -prof[r[0] : r[1] + 1].max())
    angles = tuple(float(centres[a + int(np.argmax(prof[a : b + 1]))]) for a, b in peaks)
    intervals = tuple(
        (float(centres[a] - WEDGE_MARGIN_DEG), float(centres[b] + WEDGE_MARGIN_DEG))
        for a, b in runs
    )
    return _Wedge(direction, angles, intervals, strength), True


def _wedge_mask(
    geo: _Geometry, wedge: _Wedge, margin_deg: float = 0.0, min_steps: float = WEDGE_MIN_STEPS
) -> np.ndarray:
    """Pixels within the wedge's angle runs (widened by ``margin_deg``) or near its lines."""
    if wedge.direction == "horizontal":
        theta, rsin, rcos = geo.theta_h, geo.rsin_h, geo.rcos_h
    else:
        theta, rsin, rcos = geo.theta_v, geo.rsin_v, geo.rcos_v
    mask = np.zeros(theta.shape, dtype=bool)
    reach = np.float32(min_steps * geo.step)
    for lo, hi in wedge.intervals:
        lo, hi = lo - margin_deg, hi + margin_deg
        mask |= (theta >= lo) & (theta <= hi)
        # Near the origin a degree is less than a frequency step: also take the pixels within
        # ``min_steps`` of the run's edge lines (distance rho * |sin(theta - edge)|).
        for edge in (lo, hi):
            e = np.radians(edge)
            mask |= np.abs(rsin * np.float32(np.cos(e)) - rcos * np.float32(np.sin(e))) <= reach
    return mask & ~geo.dc


def _ring_excess(
    power: np.ndarray,
    log_power: np.ndarray,
    geo: _Geometry,
    wedge_mask: np.ndarray,
    neighbours: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ring: wedge power above what the neighbours predict, that prediction, wedge size.

    Returns
    -------
    excess, expected, size : numpy.ndarray
        ``excess[r] = sum(wedge power) - size[r] * expected[r]``; ``expected`` is 0 where the
        ring has no neighbours (such rings do not count).
    """
    # Expected power: the neighbours' mean without the pixels above TRIM_GEO times the ring's
    # geometric mean, so that other bright lines, spots and the leakage of a strong stripe
    # along the axes through it do not raise it.
    log_mean, _ = _ring_log_mean(log_power, geo.ring, neighbours, geo.n_rings)
    ring_n = geo.ring[neighbours]
    p_n = power[neighbours]
    keep = p_n <= TRIM_GEO * np.exp(log_mean)[ring_n]
    counts = np.bincount(ring_n[keep], minlength=geo.n_rings)
    sums = np.bincount(ring_n[keep], weights=p_n[keep], minlength=geo.n_rings)
    expected = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    rings = geo.ring[wedge_mask]
    w = geo.weight[wedge_mask]
    observed = np.bincount(rings, weights=w * power[wedge_mask], minlength=geo.n_rings)
    size = np.bincount(rings, weights=w, minlength=geo.n_rings)
    return observed - size * expected, expected, size


def _stripe_rings(excess: np.ndarray, expected: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Rings whose wedge holds significantly more than expected: excess > SIG_RING sigma.

    The wedge power of a ring without stripes fluctuates by about ``sqrt(size) * expected``
    (exponentially distributed pixel powers); only rings above ``SIG_RING`` times that count,
    so the few, noisy low-frequency rings where image content dominates do not swamp the sum.
    """
    ok = (expected > 0) & (size > 0) & (np.arange(expected.size) >= MIN_RING)
    return ok & (excess > SIG_RING * np.sqrt(np.maximum(size, 1.0)) * expected)


def _neighbour_mask(geo: _Geometry, wedge: _Wedge) -> np.ndarray:
    """The wedge's angular neighbours: every pixel of its ring that is not close to the wedge."""
    near = _wedge_mask(geo, wedge, margin_deg=GAP_DEG, min_steps=GAP_STEPS)
    return ~near & ~geo.dc


# -- the wedge of one plane, for other modules -------------------------------------------------
@dataclass(frozen=True)
class StripeWedge:
    """Where a plane's stripes lie in its half-plane spectrum (:func:`find_stripe_wedge`).

    Attributes
    ----------
    found : bool
        Whether stripe lines stood out of the angular power profile.
    direction : str
        ``"horizontal"`` or ``"vertical"``.
    angles : tuple of float
        Stripe angles (degrees), strongest first; empty when none was found.
    mask, neighbours : numpy.ndarray
        Boolean masks over the ``rfft2`` spectrum: the wedge, and its angular neighbours.
    rings : numpy.ndarray
        Boolean per ring: the wedge holds significantly more power than its neighbours there.
    excess, expected : float
        Wedge power above the neighbours' level, and that level, summed over those rings.
    """

    found: bool
    direction: str
    angles: tuple[float, ...]
    mask: np.ndarray
    neighbours: np.ndarray
    rings: np.ndarray
    excess: float
    expected: float

    @property
    def striped(self) -> bool:
        """Stripe lines were found and at least one ring holds significant stripe power."""
        return self.found and bool(self.rings.any())


def find_stripe_wedge(
    plane: np.ndarray,
    direction: StripeDirection = "auto",
    *,
    max_angle: float = 30.0,
    peak_mad: float = PEAK_MAD,
    peak_ratio: float = PEAK_RATIO,
) -> StripeWedge:
    """Find the stripe wedge of one plane the way the meter does (steps 1-3 of the module doc).

    Parameters
    ----------
    plane : numpy.ndarray
        ``(Y, X)`` real image, finite.
    direction : {"auto", "horizontal", "vertical"}
        Stripe family; ``"auto"`` takes the one with stripe lines and more stripe energy.
    max_angle : float
        Largest stripe angle from the family's axis (degrees).
    peak_mad, peak_ratio : float
        An angle bin is a stripe line above ``median + peak_mad MAD`` and ``peak_ratio x
        median`` of the angular profile (the meter's defaults; lower values find fainter or
        more spread-out stripes).

    Returns
    -------
    StripeWedge
    """
    x = np.asarray(plane, dtype=np.float32)
    geo = _geometry(*x.shape)
    sx = periodic_spectrum(x)
    px = sx.real**2 + sx.imag**2
    return _best_wedge(px, _log_power(px), geo, direction, max_angle, peak_mad, peak_ratio)


def _best_wedge(
    px: np.ndarray,
    log_px: np.ndarray,
    geo: _Geometry,
    direction: StripeDirection,
    max_angle: float,
    peak_mad: float = PEAK_MAD,
    peak_ratio: float = PEAK_RATIO,
) -> StripeWedge:
    """The stripe wedge of a power spectrum: per family, the wedge, its neighbours and stripe
    rings; a family with stripe lines beats one without, and among equals the larger stripe
    energy wins (not the sharper peak: stripes at many angles spread their energy over several
    peaks)."""
    families = ("horizontal", "vertical") if direction == "auto" else (direction,)
    best: StripeWedge | None = None
    for family in families:
        wedge, found = _find_wedge(px, log_px, geo, family, max_angle, peak_mad, peak_ratio)
        wmask = _wedge_mask(geo, wedge)
        neighbours = _neighbour_mask(geo, wedge)
        excess, base, size = _ring_excess(px, log_px, geo, wmask, neighbours)
        rings = _stripe_rings(excess, base, size)
        cand = StripeWedge(
            found=found,
            direction=wedge.direction,
            angles=wedge.angles if found else (),
            mask=wmask,
            neighbours=neighbours,
            rings=rings,
            excess=float(excess[rings].sum()),
            expected=float((size * base)[rings].sum()),
        )
        if best is None or (cand.found, cand.excess) > (best.found, best.excess):
            best = cand
    assert best is not None
    return best


def ring_excess(
    power: np.ndarray, wedge: StripeWedge, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ring: wedge power above the neighbours' mean, that mean, and the wedge's size.

    ``power`` is ``|rfft2|²`` of a ``shape`` plane, ``wedge`` found on a plane of that shape.
    """
    geo = _geometry(int(shape[0]), int(shape[1]))
    return _ring_excess(power, _log_power(power), geo, wedge.mask, wedge.neighbours)


def stripe_rings(excess: np.ndarray, expected: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Rings whose wedge holds significantly more than expected (the outputs of
    :func:`ring_excess`; the rule of step 3 of the module doc)."""
    return _stripe_rings(excess, expected, size)


def stripe_band(
    shape: tuple[int, int], angles: tuple[float, ...], margin_deg: float, min_steps: float
) -> np.ndarray:
    """Boolean ``rfft2`` mask of a ``shape`` plane: where horizontal stripes at ``angles``
    (degrees from the x axis) can put power, widened by ``margin_deg`` and, near the origin
    where a degree is less than a frequency step, by ``min_steps`` frequency steps (finite
    stripes spread that far across their line). The DC term is not in it."""
    geo = _geometry(int(shape[0]), int(shape[1]))
    mask = np.zeros(geo.rho.shape, dtype=bool)
    reach = np.float32(min_steps * geo.step)
    for angle in angles or (0.0,):
        off = (geo.theta_h - np.float32(angle) + 90.0) % 180.0 - 90.0
        mask |= np.abs(off) <= margin_deg
        mask |= geo.rho * np.abs(np.sin(np.radians(off))) <= reach
    return mask & ~geo.dc


def spectrum_rings(shape: tuple[int, int]) -> np.ndarray:
    """Ring index (one frequency step wide) of every ``rfft2`` pixel of a ``shape`` plane."""
    return _geometry(int(shape[0]), int(shape[1])).ring


def spectrum_weights(shape: tuple[int, int]) -> np.ndarray:
    """Weight of every ``rfft2`` pixel of a ``shape`` plane in a power sum over the whole
    spectrum: 2 for columns standing for a conjugate pair, else 1."""
    return _geometry(int(shape[0]), int(shape[1])).weight


# -- one plane ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PlaneResult:
    e_in: float
    e_out: float
    out_in: float  # input power outside the wedge (non-DC)
    out_removed: float  # removed-component power outside the wedge
    e_base: float  # expected wedge power without stripes on the rings that count
    e_in_fine: float  # the same three on the rings from FINE_MIN_RING up
    e_out_fine: float
    e_base_fine: float
    direction: str
    angles: tuple[float, ...]
    found: bool
    fg_in: np.ndarray  # strided sample of foreground values (for the pooled median)
    fg_out: np.ndarray
    sum_in: float
    sum_out: float
    n_fg: int
    n_px: int
    med_in: float
    med_out: float

    @property
    def stripe_removed(self) -> float:
        return _removed(self.found, self.e_in, self.e_out, self.e_base)

    @property
    def fine_stripe_removed(self) -> float:
        return _removed(self.found, self.e_in_fine, self.e_out_fine, self.e_base_fine)

    @property
    def structure_changed(self) -> float:
        return self.out_removed / self.out_in if self.out_in > 0 else 0.0


def _removed(found: bool, e_in: float, e_out: float, e_base: float) -> float:
    """Share of the stripe energy ``e_in`` gone (``e_out`` left); NaN without a signal."""
    if not found or e_in <= 0 or e_in <= MIN_CONTRAST * e_base:
        return math.nan
    return 1.0 - max(e_out, 0.0) / e_in


# Above this magnitude squared spectra (and Otsu's variances) overflow float32: a plane of
# 512 x 512 values of 2**40 has spectral power up to ~2**116 (float32 tops out at 2**128).
_FLOAT32_SAFE = 2.0**40


def _work_dtype(plane: np.ndarray) -> type:
    big = plane.size and float(np.abs(plane).max()) > _FLOAT32_SAFE
    return np.float64 if big else np.float32


def foreground_mask(plane: np.ndarray) -> np.ndarray:
    """Foreground of a plane: Otsu's threshold of the plane smoothed with sigma 2 px.

    Falls back to the whole plane when it is constant or the mask holds under 1 % of pixels.
    """
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(plane.astype(_work_dtype(plane)), 2.0, mode="nearest")
    if not smooth.max() > smooth.min():
        return np.ones(plane.shape, dtype=bool)
    mask = smooth > threshold_otsu(smooth)
    if mask.mean() < MIN_FOREGROUND:
        return np.ones(plane.shape, dtype=bool)
    return mask


def _measure_plane(
    x: np.ndarray,
    y: np.ndarray,
    direction: StripeDirection,
    max_angle: float,
    domain: MeterDomain = "linear",
) -> _PlaneResult:
    m, n = x.shape
    geo = _geometry(m, n)
    # float32 spectra: twice as fast, and ample for power ratios (sums are taken in float64);
    # float64 where squared spectra of big values would overflow float32.
    work = np.result_type(_work_dtype(x), _work_dtype(y))
    if domain == "log":
        eps = log_offset(x)
        sx = periodic_spectrum(np.log(np.maximum(x, 0) + eps).astype(np.float32))
        sy = periodic_spectrum(np.log(np.maximum(y, 0) + eps).astype(np.float32))
    else:
        sx = periodic_spectrum(x.astype(work))
        sy = periodic_spectrum(y.astype(work))
    px = sx.real**2 + sx.imag**2
    py = sy.real**2 + sy.imag**2
    d = sx - sy
    pr = d.real**2 + d.imag**2
    log_px = _log_power(px)
    wedge = _best_wedge(px, log_px, geo, direction, max_angle)
    wmask, neighbours, rings = wedge.mask, wedge.neighbours, wedge.rings
    # The result's excess over its own neighbours, on the same rings as the input's.
    excess_out, _, _ = _ring_excess(py, _log_power(py), geo, wmask, neighbours)
    e_out = float(excess_out[rings].sum())
    excess_in, base_in, size_in = _ring_excess(px, log_px, geo, wmask, neighbours)
    fine = rings & (np.arange(rings.size) >= FINE_MIN_RING)
    outside = ~wmask & ~geo.dc
    w = geo.weight
    out_in = float(np.sum(w[outside] * px[outside], dtype=np.float64))
    out_removed = float(np.sum(w[outside] * pr[outside], dtype=np.float64))

    fg = foreground_mask(x)
    vin, vout = x[fg], y[fg]
    stride = max(1, vin.size // MEDIAN_SAMPLE)
    return _PlaneResult(
        e_in=wedge.excess,
        e_out=e_out,
        out_in=out_in,
        out_removed=out_removed,
        e_base=wedge.expected,
        e_in_fine=float(excess_in[fine].sum()),
        e_out_fine=float(excess_out[fine].sum()),
        e_base_fine=float((size_in * base_in)[fine].sum()),
        direction=wedge.direction,
        angles=wedge.angles,
        found=wedge.found,
        fg_in=vin[::stride].copy(),
        fg_out=vout[::stride].copy(),
        sum_in=float(vin.sum()),
        sum_out=float(vout.sum()),
        n_fg=int(vin.size),
        n_px=int(x.size),
        med_in=float(np.median(vin)),
        med_out=float(np.median(vout)),
    )


def _rel(new: float, old: float) -> float:
    return (new - old) / abs(old) if old != 0 else math.nan


# -- public API ---------------------------------------------------------------------------------
def measure_stripes_steps(
    input: Any,
    restored: Any,
    *,
    direction: StripeDirection = "auto",
    max_angle: float = 30.0,
    rgb: bool | None = None,
    max_planes: int | None = None,
    domain: MeterDomain = "linear",
) -> Generator[tuple[int, int], None, StripeMeasure]:
    """Generator form of :func:`measure_stripes`: yields ``(planes done, planes)``.

    Everything is validated before the first yield; the :class:`StripeMeasure` is the
    generator's return value (docks wrap the steps into their progress reports).
    """
    if not hasattr(input, "shape"):
        input = np.asarray(input)
    if not hasattr(restored, "shape"):
        restored = np.asarray(restored)
    validate_stripe_pair(input, restored, rgb=rgb)
    if direction not in ("auto", "horizontal", "vertical"):
        raise RestoreInputError(f"direction={direction!r}: auto, horizontal or vertical.")
    if not 0 < max_angle <= 45:
        raise RestoreInputError(f"max_angle={max_angle!r}: give degrees in (0, 45].")
    if domain not in DOMAINS:
        raise RestoreInputError(
            f"domain={domain!r}: linear (additive stripes) or log (attenuation stripes)."
        )
    lead = tuple(int(s) for s in input.shape[:-2])
    n_planes = int(np.prod(lead)) if lead else 1
    chosen = np.arange(n_planes)
    if max_planes is not None and n_planes > max_planes:
        chosen = np.unique(np.linspace(0, n_planes - 1, max(1, int(max_planes))).round())
        chosen = chosen.astype(np.int64)
    results: list[_PlaneResult] = []
    for i, flat in enumerate(chosen):
        index = tuple(int(j) for j in np.unravel_index(flat, lead)) if lead else ()
        x = _float_plane(input[index], "input")
        y = _float_plane(restored[index], "restored image")
        results.append(_measure_plane(x, y, direction, max_angle, domain))
        yield i + 1, len(chosen)
    m = _combine(results, lead, max_angle, tuple(int(s) for s in input.shape), domain)
    return replace(m, planes=tuple(int(f) for f in chosen)) if lead else m


def measure_stripes(
    input: Any,
    restored: Any,
    *,
    direction: StripeDirection = "auto",
    max_angle: float = 30.0,
    rgb: bool | None = None,
    max_planes: int | None = None,
    domain: MeterDomain = "linear",
) -> StripeMeasure:
    """Measure what a destriper did, without a ground truth (see the module docstring).

    Parameters
    ----------
    input : array_like
        The striped image, ``(Y, X)`` or ``(..., Y, X)`` (numpy, dask, zarr).
    restored : array_like
        Its restored version, same shape.
    direction : {"auto", "horizontal", "vertical"}
        Which way the stripes run: along x (``"horizontal"``), along y, or found per plane from
        the input's spectrum (``"auto"``, the default).
    max_angle : float
        Stripe angles are searched within this many degrees of the direction's axis (0-45).
    rgb : bool, optional
        Whether the data are colour (refused with a clear message); ``None`` guesses.
    max_planes : int, optional
        Measure at most this many evenly spaced planes of a stack (all by default).
    domain : {"linear", "log"}
        Compare the spectra of the intensities (``"linear"``, the default) or of
        ``log(I + eps)`` (``"log"``; ``eps`` is :data:`LOG_OFFSET` of each input plane's
        1st-99.9th percentile range). Attenuation stripes (light-sheet shadows) multiply the
        image: in the log domain they are an additive stripe field, so removing them exactly
        shows as stripe energy removed and not as structure changed. In the linear domain the
        removed component is the stripe field times the image, part of which lies outside the
        wedge (see "Which domain" in the module docstring). The intensity changes are always
        measured on the intensities.

    Returns
    -------
    StripeMeasure
        Stripe energy removed, structure changed, intensity changes, direction and angle, with a
        plain-language :attr:`~StripeMeasure.verdict`.

    Raises
    ------
    RestoreInputError
        For mismatched, empty or too small shapes, NaN/Inf, complex or RGB data.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.random((128, 128))
    >>> striped = clean + 0.5 * np.sin(np.arange(128) / 2.0)[:, None]
    >>> m = measure_stripes(striped, clean)
    >>> m.direction, round(m.stripe_removed, 2), round(m.structure_changed, 3)
    ('horizontal', 1.0, 0.0)
    """
    gen = measure_stripes_steps(
        input,
        restored,
        direction=direction,
        max_angle=max_angle,
        rgb=rgb,
        max_planes=max_planes,
        domain=domain,
    )
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _combine(
    results: Sequence[_PlaneResult],
    lead: tuple[int, ...],
    max_angle: float,
    shape: tuple,
    domain: str = "linear",
) -> StripeMeasure:
    found = [r for r in results if r.found]
    e_in = sum(r.e_in for r in found)
    e_out = sum(max(r.e_out, 0.0) for r in found)
    e_base = sum(r.e_base for r in found)
    stripe = _removed(bool(found), e_in, e_out, e_base)
    e_in_fine = sum(r.e_in_fine for r in found)
    fine = _removed(
        bool(found),
        e_in_fine,
        sum(max(r.e_out_fine, 0.0) for r in found),
        sum(r.e_base_fine for r in found),
    )
    coarse = 1.0 - e_in_fine / e_in if e_in > 0 else 0.0
    out_in = sum(r.out_in for r in results)
    structure = sum(r.out_removed for r in results) / out_in if out_in > 0 else 0.0
    n_fg = sum(r.n_fg for r in results)
    mean_change = _rel(
        sum(r.sum_out for r in results) / n_fg, sum(r.sum_in for r in results) / n_fg
    )
    if len(results) == 1:
        med_change = _rel(results[0].med_out, results[0].med_in)
    else:
        med_change = _rel(
            float(np.median(np.concatenate([r.fg_out for r in results]))),
            float(np.median(np.concatenate([r.fg_in for r in results]))),
        )
    directions = tuple(r.direction for r in results)
    voted = [r.direction for r in found] or list(directions)
    direction = max(("horizontal", "vertical"), key=voted.count)
    main = [r.angles[0] for r in found if r.direction == direction]
    angle = float(np.median(main)) if main else math.nan
    first = next((r for r in found if r.direction == direction), None)
    per_plane: dict[str, np.ndarray] = {}
    if lead:
        per_plane = {
            "stripe_removed": np.array([r.stripe_removed for r in results]),
            "fine_stripe_removed": np.array([r.fine_stripe_removed for r in results]),
            "structure_changed": np.array([r.structure_changed for r in results]),
            "median_change": np.array([_rel(r.med_out, r.med_in) for r in results]),
            "mean_change": np.array([_rel(r.sum_out, r.sum_in) for r in results]),
            "angle": np.array([r.angles[0] if r.found else math.nan for r in results]),
            "stripe_contrast": np.array([r.e_in / r.e_base if r.e_base else 0.0 for r in results]),
        }
    return StripeMeasure(
        stripe_removed=float(stripe),
        structure_changed=float(structure),
        median_change=float(med_change),
        mean_change=float(mean_change),
        direction=direction,
        angle=angle,
        angles=first.angles if first is not None else (),
        stripe_contrast=e_in / e_base if e_base > 0 else 0.0,
        foreground_fraction=n_fg / sum(r.n_px for r in results),
        max_angle=float(max_angle),
        fine_stripe_removed=float(fine),
        coarse_share=float(min(max(coarse, 0.0), 1.0)),
        per_plane=per_plane,
        plane_directions=directions if lead else (),
        shape=shape,
        domain=domain,
    )


# -- tables -------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "input",
    "restored",
    "plane",
    "stripe_removed_pct",
    "fine_stripe_removed_pct",
    "structure_changed_pct",
    "median_change_pct",
    "mean_change_pct",
    "direction",
    "angle_deg",
    "stripe_contrast",
    "domain",
    "verdict",
)


def stripe_rows(input_name: str, restored_name: str, m: StripeMeasure) -> list[dict[str, Any]]:
    """CSV rows of one result: the whole image (``plane="all"``), then one per plane."""

    def pct(v: float) -> float | str:
        return "" if math.isnan(v) else round(100.0 * float(v), 4)

    base = {"input": input_name, "restored": restored_name}
    rows = [
        {
            **base,
            "plane": "all",
            "stripe_removed_pct": pct(m.stripe_removed),
            "fine_stripe_removed_pct": pct(m.fine_stripe_removed),
            "structure_changed_pct": pct(m.structure_changed),
            "median_change_pct": pct(m.median_change),
            "mean_change_pct": pct(m.mean_change),
            "direction": m.direction,
            "angle_deg": "" if math.isnan(m.angle) else round(m.angle, 2),
            "stripe_contrast": round(m.stripe_contrast, 4),
            "domain": m.domain,
            "verdict": m.verdict,
        }
    ]
    if m.per_plane:
        p = m.per_plane
        for i in range(len(p["stripe_removed"])):
            rows.append(
                {
                    **base,
                    "plane": m.planes[i] if m.planes else i,
                    "stripe_removed_pct": pct(p["stripe_removed"][i]),
                    "fine_stripe_removed_pct": pct(p["fine_stripe_removed"][i]),
                    "structure_changed_pct": pct(p["structure_changed"][i]),
                    "median_change_pct": pct(p["median_change"][i]),
                    "mean_change_pct": pct(p["mean_change"][i]),
                    "direction": m.plane_directions[i],
                    "angle_deg": "" if math.isnan(p["angle"][i]) else round(p["angle"][i], 2),
                    "stripe_contrast": round(float(p["stripe_contrast"][i]), 4),
                    "domain": m.domain,
                    "verdict": "",
                }
            )
    return rows


def write_stripe_csv(
    path: str | os.PathLike[str], rows: Sequence[dict[str, Any]], *, overwrite: bool = False
) -> Path:
    """Write rows of :func:`stripe_rows` to a CSV file, atomically; an existing file is
    replaced only with ``overwrite=True`` (else :class:`RestoreInputError`)."""
    return write_csv_rows(path, rows, CSV_COLUMNS, overwrite=overwrite)
