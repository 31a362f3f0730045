"""Stripe evidence, a spectral clean-up and the level around the network (per plane).

Four steps bracket the U-Net in :func:`napari_restore.destripe.infer.destripe`, the first
three built on the stripe meter's spectral geometry
(:func:`napari_restore.stripe_meter.find_stripe_wedge`):

**Evidence.** A plane whose spectrum shows no stripe wedge (no stripe lines standing out of the
angular power profile, or no ring where the wedge holds significantly more power than its
angular neighbours) is returned unchanged, unless the network's correction of it is a stripe
pattern of its own (the second look, :func:`finish_plane`): a network trained on striped
patches otherwise "corrects" structures it reads as shadows (dark nuclei filled in, sparse
objects brightened), and such corrections are blobs and texture, not stripe patterns.
The detection thresholds are lower than the meter's (:data:`DETECT_PEAK_MAD`,
:data:`DETECT_PEAK_RATIO`) so that faint and spread-out (tilted) stripes still count. On the 16
held-out validation crops (``benchmarks/bench_destripe.py --set heldout``): clean crops flagged
3 of 16 (meter thresholds: 2), simulator tilted stripes found on 14 of 16 (meter thresholds: 7),
regular and Gaussian stripes on 15-16 of 16.

**Stripe-shaped correction.** What the network changed is kept only where stripes can put
power: its correction ``log(output + eps) - log(input + eps)`` is projected onto the band of
the spectrum around the input's stripe angles (:func:`keep_stripe_shaped`), so the output
differs from the input by stripe-like factors (plus their mean), never by round blobs or
texture the network invented.

**Clean-up.** The network removes local stripe structure but leaves fine, long stripes that it
has not seen in training (e.g. the dense one-pixel lines of SmartSPIM planes). After the network,
in the log domain (attenuation stripes multiply), every spectrum coefficient inside the input's
stripe wedge, on the rings where the input shows stripe power (from the eighth ring on), is
scaled down to the mean power of its angular neighbours at the same spatial frequency (never
up): an adaptive notch in the spirit of the Fourier filtering of Münch et al., Opt. Express
17(10), 8567 (2009), but set by the image's own spectrum instead of a fixed Gaussian damping.
The phase is kept; the geometric mean and everything outside the wedge are untouched. Planes
are made periodic first (Moisan's periodic plus smooth decomposition, as in the meter) and the
smooth part is added back unchanged. On the held-out crops it costs nothing measurable (mean
PSNR and SSIM within ±0.3 dB / ±0.005 of the network alone for every stripe type and kind of
image); on the bundled SmartSPIM plane it takes the meter's stripe removal from 18 % to 100 %.

**Level.** Stripes are a minority of a plane's pixels; the rest is not to be brightened or
darkened. The correction's most common value over the brighter half of the plane (the mode of
its histogram) is taken as "no stripe" and divided out (:func:`keep_level`), so the plane's
unstriped majority keeps the input's intensity whatever level the network drifted to (and
whatever the log-domain notch did to the arithmetic mean). A plane covered by stripes everywhere
keeps the level at which most of it is corrected alike. Planes whose stripe evidence is weak and
whose network correction is faint have nothing to level against and are not levelled; they are
changed at all only when the notch removes material stripes (fine lines the network leaves),
and otherwise come back unchanged: what the notch finds there is mostly the plane's own
anisotropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from napari_restore.stripe_meter import (
    LOG_OFFSET,
    MIN_PLANE,
    StripeWedge,
    find_stripe_wedge,
    log_offset,
    periodic_spectrum,
    ring_excess,
    spectrum_rings,
    spectrum_weights,
    stripe_band,
    stripe_rings,
)

# Angle bins that count as stripe lines when deciding whether to destripe: above the angular
# profile's median + 4 MAD and 1.2 x its median (the meter itself uses 8 MAD and 1.5 x).
DETECT_PEAK_MAD = 4.0
DETECT_PEAK_RATIO = 1.2
# The clean-up leaves the lowest rings (scales of an eighth of the plane and up) to the network.
MIN_CAP_RING = 8
# Planes with an edge under this many pixels are not cleaned up: their spectra resolve lines
# too coarsely (over 0.45 degree at the outer radius) to tell fine stripes from anisotropic
# content (a 96 x 128 confocal crop of maize stem with weak stripes: MAE 0.11 grey levels
# after the network, 0.52 with the clean-up).
MIN_CAP_EDGE = 256
# The stripe band that the network's correction is kept in: the input's stripe angles
# widened by this many degrees, and by this many frequency steps across near the origin.
BAND_MARGIN_DEG = 10.0
BAND_MIN_STEPS = 3.0
# A plane whose input shows no stripe wedge is still destriped when the network's correction
# is a stripe pattern of its own: lines in its spectrum whose excess over their angular
# neighbours holds at least this share of its power, and a stripe-band part of at least this
# amplitude (log units, about a 2 % modulation). Held-out crops: the corrections of clean crops
# stay under 0.007; the 10 of 18 missed striped crops that are kept (where the network alone
# is 0.2-5.8 dB closer to the truth than the input) have 0.034-0.26 and excess shares of
# 0.44-0.86; random (untrained) networks reach shares of 0.16 at most.
SECOND_LOOK_EXCESS = 0.35
SECOND_LOOK_AMPLITUDE = 0.02
# The level step: the most common log-correction over the brighter half of the plane is found
# in a histogram of bins this wide (log units, about 0.4 %), smoothed over this many bins.
LEVEL_BIN = 0.004
LEVEL_SMOOTH_BINS = 1.5
# ... from at least this many pixels (fewer: the plane is not levelled).
LEVEL_MIN_PIXELS = 256
# ... only on planes with stripes to level against: the input's stripe wedge stands above its
# angular neighbours' power by at least this multiple of that power (its excess), or the
# network's correction has a stripe-band amplitude of at least this (log units, a 1 %
# modulation). The detection thresholds are low so that faint tilted stripes count; what they
# flag with neither is mostly the plane's own anisotropic content (2 of the 16 clean held-out
# crops: excesses of 2.2 x, corrections of 0.3 %), where levelling against the notch's small
# changes moved the mean of a sparse clean light-sheet crop from -1.0 % to +1.0 %
# (benchmarks/destripe_inference_variants.py, row "level step without its guard").
LEVEL_MIN_EVIDENCE = 2.5
LEVEL_MIN_AMPLITUDE = 0.01
# Such a plane (weak evidence, faint correction) is changed at all only when the finished
# correction (network and notch) has a standard deviation of at least this (log units, a 2 %
# modulation); otherwise it is returned unchanged. Held-out crops: a nearly clean light-sheet
# crop of dense nuclei (83 dB against its truth) gets 0.010 from the notch acting on its own
# anisotropy and came out at 57 dB, the clean chromosome crop at 65 dB; one-pixel lines of 30 %
# depth that the network leaves (the SmartSPIM case) get 0.11.
WEAK_MIN_CHANGE = 0.02


def stripe_evidence(plane: np.ndarray, *, max_angle: float = 30.0) -> StripeWedge:
    """The horizontal stripe wedge of a plane, with the destriper's detection thresholds.

    Parameters
    ----------
    plane : numpy.ndarray
        ``(Y, X)`` finite image whose stripes (if any) run along x.
    max_angle : float
        Largest stripe angle from the x axis (degrees).

    Returns
    -------
    StripeWedge
        ``.striped`` says whether the plane shows stripes.
    """
    plane = np.asarray(plane, dtype=np.float32)
    if min(plane.shape) < MIN_PLANE:  # too few frequencies to tell stripes from content
        half = (plane.shape[0], plane.shape[1] // 2 + 1)
        none = np.zeros(half, dtype=bool)
        rings = np.zeros(int(spectrum_rings(plane.shape).max()) + 1, dtype=bool)
        return StripeWedge(False, "horizontal", (), none, none, rings, 0.0, 0.0)
    return find_stripe_wedge(
        plane,
        "horizontal",
        max_angle=max_angle,
        peak_mad=DETECT_PEAK_MAD,
        peak_ratio=DETECT_PEAK_RATIO,
    )


def _cap(z: np.ndarray, wedge: StripeWedge, min_ring: int, min_ratio: float = 1.0) -> np.ndarray:
    """Scale the wedge coefficients of ``z`` above ``min_ratio`` times their neighbours' mean
    power down to that mean."""
    shape = z.shape
    spec = periodic_spectrum(z)
    # The smooth part (what makes opposite borders meet) goes back unchanged.
    smooth = z - sfft.irfft2(spec, s=shape).astype(np.float32)
    power = spec.real**2 + spec.imag**2
    excess, expected, size = ring_excess(power, wedge, shape)
    # Only rings where stripes show in the input *and still stand out in z* (the network may
    # have removed them already; then the wedge holds image content, which must stay).
    left = wedge.rings & stripe_rings(excess, expected, size)
    rings = spectrum_rings(shape)
    level = expected[rings]
    sel = wedge.mask & left[rings] & (rings >= min_ring) & (power > min_ratio * level) & (level > 0)
    gain = np.ones(power.shape, dtype=np.float32)
    gain[sel] = np.sqrt(level[sel] / power[sel])
    return sfft.irfft2(spec * gain, s=shape).astype(np.float32) + smooth


def _log_offset(x: np.ndarray) -> np.float32:
    """``eps`` of ``log(I + eps)``, as the stripe meter's log domain takes it
    (:data:`LOG_OFFSET` of the 1st-99.9th percentile range, plus the plane's negative part)."""
    return np.float32(log_offset(x))


def _log_change(
    restored: np.ndarray, input_plane: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """``log(restored + eps) - log(input + eps)``, ``log(input + eps)`` (float32) and ``eps``."""
    x = np.asarray(input_plane, dtype=np.float32)
    eps = _log_offset(x)
    log_x = np.log(np.maximum(x, 0) + eps)
    return np.log(np.maximum(restored, 0) + eps) - log_x, log_x, eps


def _band_split(
    change: np.ndarray,
    spec: np.ndarray,
    angles: tuple[float, ...],
    margin_deg: float,
    min_steps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``change`` = its part in the stripe band + the rest: returns the band part and the
    part that is always kept (the mean and the smooth border part). ``spec`` is
    ``periodic_spectrum(change)``."""
    smooth = change - sfft.irfft2(spec, s=change.shape).astype(np.float32)
    band = stripe_band(change.shape, angles, margin_deg, min_steps)
    part = sfft.irfft2(spec * band, s=change.shape).astype(np.float32)
    mean = np.float32(spec[0, 0].real / change.size)
    return part, smooth + mean


def _from_log(log_x: np.ndarray, eps: np.float32, part: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The input with the band part and the always-kept part of its log correction applied."""
    return (np.exp(log_x + part + kept) - eps).astype(np.float32)


@dataclass(frozen=True)
class CorrectionStripes:
    """How stripe-like the network's correction of a plane is (:func:`correction_stripes`).

    Attributes
    ----------
    angles : tuple of float
        Stripe angles found in the correction (degrees from the x axis); empty when none.
    excess_share : float
        Power of the correction's stripe wedge above its angular neighbours' level (on the
        rings where that excess is significant), as a share of the correction's power (its
        mean excluded): near 1 for a pure stripe field, low for blobs, texture or noise.
    amplitude : float
        Standard deviation of the correction's part in the stripe band around ``angles``, in
        log units (about the relative intensity change: 0.02 is a 2 % stripe modulation).
    """

    angles: tuple[float, ...]
    excess_share: float
    amplitude: float


def correction_stripes(
    restored: np.ndarray,
    input_plane: np.ndarray,
    *,
    margin_deg: float = BAND_MARGIN_DEG,
    min_steps: float = BAND_MIN_STEPS,
) -> CorrectionStripes:
    """Look for a stripe pattern in the network's correction of one plane.

    The correction ``log(restored + eps) - log(input + eps)`` is searched for stripe lines
    the way the input is (:func:`stripe_evidence`).

    Parameters
    ----------
    restored : numpy.ndarray
        ``(Y, X)`` network output, in the input's intensity units.
    input_plane : numpy.ndarray
        The input plane.
    margin_deg, min_steps : float
        Widening of the band around the angles (as in :func:`keep_stripe_shaped`).

    Returns
    -------
    CorrectionStripes
        All zero (no angles) when the correction shows no stripe lines.
    """
    return _correction_parts(restored, input_plane, margin_deg, min_steps)[0]


def _correction_parts(
    restored: np.ndarray, input_plane: np.ndarray, margin_deg: float, min_steps: float
) -> tuple[CorrectionStripes, tuple[np.ndarray, np.float32, np.ndarray, np.ndarray] | None]:
    """:func:`correction_stripes`, and what :func:`_from_log` needs to keep the correction's
    stripe-shaped part around the angles found (``None`` when there are none), so that the
    second look does not compute the correction and its spectrum again."""
    z = np.asarray(restored, dtype=np.float32)
    none = CorrectionStripes((), 0.0, 0.0)
    if min(z.shape) < MIN_PLANE:
        return none, None
    change, log_x, eps = _log_change(z, input_plane)
    own = stripe_evidence(change)
    if not own.striped:
        return none, None
    spec = periodic_spectrum(change)
    # Weighted like the wedge excess (conjugate pairs count twice); the mean left out.
    power = spectrum_weights(change.shape) * (spec.real**2 + spec.imag**2)
    power[0, 0] = 0.0
    total = float(power.sum(dtype=np.float64))
    share = own.excess / total if total > 0 else 0.0
    part, kept = _band_split(change, spec, own.angles, margin_deg, min_steps)
    stats = CorrectionStripes(own.angles, share, float(part.std(dtype=np.float64)))
    return stats, (log_x, eps, part, kept)


def keep_stripe_shaped(
    restored: np.ndarray,
    input_plane: np.ndarray,
    wedge: StripeWedge | tuple[float, ...],
    *,
    margin_deg: float = BAND_MARGIN_DEG,
    min_steps: float = BAND_MIN_STEPS,
) -> np.ndarray:
    """Keep only the stripe-shaped part of the network's correction.

    The correction ``log(restored + eps) - log(input + eps)`` is projected onto the band of
    the spectrum where the input's stripes lie (:func:`napari_restore.stripe_meter.stripe_band`
    around ``wedge.angles``); what the network changed at other orientations (round objects
    filled in or dimmed, texture) is dropped, so the output differs from the input by stripe-like
    factors only. The correction's mean (DC) and its smooth border part are kept.

    Parameters
    ----------
    restored : numpy.ndarray
        ``(Y, X)`` network output, in the input's intensity units.
    input_plane : numpy.ndarray
        The striped input plane.
    wedge : StripeWedge or tuple of float
        :func:`stripe_evidence` of the input plane (nothing is done unless ``wedge.striped``),
        or the stripe angles themselves (e.g. those found in the correction,
        :func:`correction_stripes`; nothing is done when empty).
    margin_deg, min_steps : float
        Widening of the band around the stripe angles (degrees; frequency steps near the
        origin, where finite stripes spread their power across the line).

    Returns
    -------
    numpy.ndarray
        float32 plane of the same shape.

    Notes
    -----
    On the 16 held-out crops (network outputs cached, both stripe generators) the projection
    raised mean PSNR over the network alone by 0.04-0.70 dB for every stripe type, and lowered
    the stripe meter's structure change on the bundled SmartSPIM plane (0.21 % to 0.10 %).
    """
    z = np.asarray(restored, dtype=np.float32)
    angles = wedge if isinstance(wedge, tuple) else (wedge.angles if wedge.striped else ())
    if not angles or min(z.shape) < MIN_PLANE:
        return z.copy()
    change, log_x, eps = _log_change(z, input_plane)
    part, kept = _band_split(change, periodic_spectrum(change), angles, margin_deg, min_steps)
    return _from_log(log_x, eps, part, kept)


def cap_stripe_wedge(
    restored: np.ndarray,
    input_plane: np.ndarray,
    wedge: StripeWedge,
    *,
    min_ring: int = MIN_CAP_RING,
    min_ratio: float = 1.0,
) -> np.ndarray:
    """Bring the stripe wedge of ``restored`` down to its neighbours' level, in the log domain.

    Parameters
    ----------
    restored : numpy.ndarray
        ``(Y, X)`` plane (the network's output), in the input's intensity units.
    input_plane : numpy.ndarray
        The striped input plane (sets the log offset and the wedge).
    wedge : StripeWedge
        :func:`stripe_evidence` of the input plane; nothing is done unless ``wedge.striped``.
    min_ring : int
        Rings below this index (scales comparable to the plane, which the network handles) are
        left alone.
    min_ratio : float
        Only coefficients with more than this multiple of their angular neighbours' mean power
        are scaled down (default 1: all that stand above it). Higher values spare anisotropic
        content but also leave real stripes: on the held-out crops 4 gains 0.5 dB on the
        independent generator's tilted stripes and lifts a nearly clean light-sheet crop from
        57 to 65 dB, but the real SPIM image keeps more of its stripes (66 % removed instead
        of 70 %) and the SmartSPIM planes 10 % (``benchmarks/destripe_inference_variants.py``).

    Returns
    -------
    numpy.ndarray
        float32 plane of the same shape.

    Notes
    -----
    Attenuation stripes multiply the image, so the notch works on ``log(I + eps)`` (``eps`` 1 %
    of the input's 1st-99.9th percentile range, plus its negative part): a stripe is then the
    same additive line over bright and dark structures, and whatever the notch changes scales
    with the local intensity, so black background stays black (in the linear domain the notch
    ringed across the empty background of sparse light-sheet crops, SSIM 0.98 → 0.89). The
    wedge and its stripe rings are found again on the log input when stripes show there;
    otherwise the linear input's wedge is used. The geometric mean (the log DC term) is kept.
    """
    z = np.asarray(restored, dtype=np.float32)
    if not wedge.striped or min(z.shape) < MIN_CAP_EDGE:
        return z.copy()
    x = np.asarray(input_plane, dtype=np.float32)
    eps = _log_offset(x)
    log_wedge = stripe_evidence(np.log(np.maximum(x, 0) + eps))
    use = log_wedge if log_wedge.striped else wedge
    capped = _cap(np.log(np.maximum(z, 0) + eps), use, min_ring, min_ratio)
    return (np.exp(capped) - eps).astype(np.float32)


def level_offset(restored: np.ndarray, input_plane: np.ndarray) -> float:
    """The correction's most common value over the brighter half of the plane (log units).

    Parameters
    ----------
    restored : numpy.ndarray
        ``(Y, X)`` corrected plane, in the input's intensity units.
    input_plane : numpy.ndarray
        The input plane.

    Returns
    -------
    float
        The mode of ``log(restored / input)`` over the pixels above the input's median and
        above the log domain's offset ``eps`` (:func:`napari_restore.stripe_meter.log_offset`:
        1 % of the 1st-99.9th percentile range plus the plane's negative part; dimmer pixels
        are mostly noise), where ``restored`` is positive: the peak of a histogram of
        :data:`LEVEL_BIN`-wide bins centred on multiples of the bin width (so that an
        unchanged majority reads exactly 0), Gaussian-smoothed over :data:`LEVEL_SMOOTH_BINS`
        bins, between the values' 1st and 99th percentiles; their median when that range is
        narrower than one bin. 0 when fewer than :data:`LEVEL_MIN_PIXELS` pixels qualify.
    """
    from scipy.ndimage import gaussian_filter1d

    x = np.asarray(input_plane, dtype=np.float32)
    z = np.asarray(restored, dtype=np.float32)
    sel = (x > np.median(x)) & (x > _log_offset(x)) & (z > 0)
    if np.count_nonzero(sel) < LEVEL_MIN_PIXELS:
        return 0.0
    values = np.log(z[sel] / x[sel])
    lo, hi = (float(v) for v in np.percentile(values, [1, 99]))
    if hi - lo < LEVEL_BIN:
        return float(np.median(values))
    first, last = (int(np.floor(v / LEVEL_BIN + 0.5)) for v in (lo, hi))
    edges = (np.arange(first, last + 2) - 0.5) * LEVEL_BIN
    counts = np.histogram(values, edges)[0].astype(np.float64)
    peak = int(np.argmax(gaussian_filter1d(counts, LEVEL_SMOOTH_BINS)))
    return float((first + peak) * LEVEL_BIN)


def keep_level(restored: np.ndarray, input_plane: np.ndarray) -> np.ndarray:
    """Give the plane's unstriped majority the input's intensity back.

    A stripe correction brightens or darkens the stripes and leaves the rest as it is; the
    network's correction also carries a level of its own (on the held-out crops it is
    several percent off, and snapshots of one training run differ by over 10 % on the real
    SPIM plane). The plane is divided by ``exp(level_offset(...))``, a pure gain: zeros stay
    zero and the correction's shape is kept.

    Parameters
    ----------
    restored : numpy.ndarray
        ``(Y, X)`` corrected plane, in the input's intensity units.
    input_plane : numpy.ndarray
        The input plane.

    Returns
    -------
    numpy.ndarray
        float32 plane of the same shape.

    Notes
    -----
    On the 16 held-out crops (the shipped network, the three stripe models' three types) the
    step changed mean PSNR by -0.02 to +0.46 dB on eight sets and by +2.24 dB on the blind
    model's regular bands; on the real SPIM plane the median moved by one grey level (+1.2 %
    to -1.2 %) and the mean from -1.9 % to -4.2 %
    (``benchmarks/destripe_inference_variants.py``, row "no level step").
    """
    z = np.asarray(restored, dtype=np.float32)
    return (z * np.float32(np.exp(-level_offset(z, input_plane)))).astype(np.float32)


def _worth_levelling(restored: np.ndarray, input_plane: np.ndarray, wedge: StripeWedge) -> bool:
    """Whether a plane with stripe evidence has stripes to level against
    (:data:`LEVEL_MIN_EVIDENCE`, :data:`LEVEL_MIN_AMPLITUDE`)."""
    if wedge.excess >= LEVEL_MIN_EVIDENCE * wedge.expected:
        return True
    own = _correction_parts(restored, input_plane, BAND_MARGIN_DEG, BAND_MIN_STEPS)[0]
    return own.amplitude >= LEVEL_MIN_AMPLITUDE


def finish_plane(
    restored: np.ndarray,
    input_plane: np.ndarray,
    wedge: StripeWedge,
    *,
    min_ratio: float = 1.0,
    level: bool = True,
) -> np.ndarray | None:
    """The destriper's per-plane decision after the network (the default pipeline).

    * The input shows stripes (``wedge.striped``): the stripe-shaped part of the correction
      is kept (:func:`keep_stripe_shaped`), then the wedge is notched (:func:`cap_stripe_wedge`).
    * It does not: a second look at the correction itself (:func:`correction_stripes`). When
      the network drew a stripe pattern (lines in the correction's spectrum whose excess holds
      at least :data:`SECOND_LOOK_EXCESS` of its power, and a stripe-band amplitude of at
      least :data:`SECOND_LOOK_AMPLITUDE`), its stripe-shaped part around those angles is kept:
      stripes that hide in the input's spectrum behind dense content or a black background
      (multiplicative stripes show only where there is signal) are removed too.
    * Otherwise ``None``: the plane is to be left as it is.

    A plane that is changed then gets its unstriped majority's intensity back
    (:func:`keep_level`; ``level=False`` leaves the network's level), unless its stripe
    evidence is weak (a wedge excess under :data:`LEVEL_MIN_EVIDENCE` x the neighbours' power)
    and the network's correction of it faint (under :data:`LEVEL_MIN_AMPLITUDE`). Such a plane
    is changed only when the notch removes material stripes (a log-domain change of at least
    :data:`WEAK_MIN_CHANGE`); otherwise ``None``.

    Parameters
    ----------
    restored : numpy.ndarray
        ``(Y, X)`` network output, in the input's intensity units.
    input_plane : numpy.ndarray
        The input plane.
    wedge : StripeWedge
        :func:`stripe_evidence` of the input plane.
    min_ratio : float
        The notch's ratio (:func:`cap_stripe_wedge`; default 1).
    level : bool
        Apply :func:`keep_level` (default).

    Returns
    -------
    numpy.ndarray or None
        float32 plane, or ``None`` for "unchanged".
    """
    if wedge.striped:
        shaped = keep_stripe_shaped(restored, input_plane, wedge)
        finished = cap_stripe_wedge(shaped, input_plane, wedge, min_ratio=min_ratio)
        if _worth_levelling(restored, input_plane, wedge):
            return keep_level(finished, input_plane) if level else finished
        # Weak evidence and a faint network correction: only a notch that removes material
        # stripes is worth a change; a smaller one is mostly the plane's own anisotropy.
        if float(_log_change(finished, input_plane)[0].std(dtype=np.float64)) < WEAK_MIN_CHANGE:
            return None
        return finished
    own, parts = _correction_parts(restored, input_plane, BAND_MARGIN_DEG, BAND_MIN_STEPS)
    if own.excess_share >= SECOND_LOOK_EXCESS and own.amplitude >= SECOND_LOOK_AMPLITUDE:
        # keep_stripe_shaped(restored, input_plane, own.angles), from the parts at hand
        finished = _from_log(*parts)
        return keep_level(finished, input_plane) if level else finished
    return None


__all__ = [
    "BAND_MARGIN_DEG",
    "BAND_MIN_STEPS",
    "DETECT_PEAK_MAD",
    "DETECT_PEAK_RATIO",
    "LEVEL_BIN",
    "LEVEL_MIN_AMPLITUDE",
    "LEVEL_MIN_EVIDENCE",
    "LEVEL_MIN_PIXELS",
    "LEVEL_SMOOTH_BINS",
    "LOG_OFFSET",
    "MIN_CAP_EDGE",
    "MIN_CAP_RING",
    "SECOND_LOOK_AMPLITUDE",
    "SECOND_LOOK_EXCESS",
    "WEAK_MIN_CHANGE",
    "CorrectionStripes",
    "cap_stripe_wedge",
    "correction_stripes",
    "finish_plane",
    "keep_level",
    "keep_stripe_shaped",
    "level_offset",
    "stripe_evidence",
]
