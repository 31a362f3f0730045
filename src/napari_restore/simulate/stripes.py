"""Synthetic stripe artifacts: the degradation model of Wei et al. (2022).

Wei, Wu, Tong, Zhang, Yang, Tian, Hui, "Elimination of stripe artifacts in light sheet
fluorescence microscopy using an attention-based residual neural network", Biomed. Opt. Express
13(3), 1292-1311 (2022), doi:10.1364/BOE.448838.

Three stripe types, each additive (``I + A*S``) or multiplicative (``I * (1 - A*S)``, the shadow
that an absorbing object casts along the light sheet):

``"regular"``
    Bands parallel to x at a regular spacing (``period``), each with a Gaussian profile across.
``"gaussian"``
    Anisotropic Gaussian stripes at random rows: narrow across (``width``), long along x
    (``length``; full width by default).
``"tilted"``
    As ``"gaussian"``, rotated by angles drawn from ``angle`` (degrees from the x axis).

Stripe kinds form a registry (:data:`STRIPE_KIND_REGISTRY`, :func:`register_stripe_kind`): each
kind declares the :class:`StripeParams` fields it reads, how it draws a field and how the
destriping trainer draws random parameters for it. The simulator dock, the training dock and the
command line list whatever is registered, so a new kind is one :class:`StripeKindSpec` and one
call (see ``docs/architecture.md``).

Everything is vectorised: a stripe only touches the rows within four widths of its centre line,
so the field of ``K`` stripes costs ``O(K * W * width)`` and is accumulated with one
``np.bincount``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from napari_restore.core.arrays import (
    MAX_ABS_VALUE,
    as_array_like,
    cast_clipped,
    check_real_image,
    resolve_output_dtype,
    robust_range,
)
from napari_restore.core.progress import Progress, ProgressGenerator, run_to_end
from napari_restore.errors import RestoreInputError

StripeKind = str  # a name in STRIPE_KIND_REGISTRY
StripeMode = Literal["additive", "multiplicative"]
# The built-in kinds (the three of the paper), in registry order; stripe_kinds() lists all.
STRIPE_KINDS: tuple[str, ...] = ("regular", "gaussian", "tilted")
STRIPE_MODES: tuple[str, ...] = ("additive", "multiplicative")
POLARITIES: tuple[str, ...] = ("dark", "bright", "mixed")

# Profiles are cut at this many standard deviations across (exp(-8) ~ 3e-4 of the peak).
_TRUNCATE = 4.0
# Bound on the number of elements of one vectorised chunk of stripes (memory ~ 4 bytes * this * 6).
_CHUNK_ELEMENTS = 4_000_000
# Attenuation is kept below 1 so that log(1 - a) stays finite; 0.999 still looks black.
_MAX_ATTENUATION = 0.999
# Bounds of the parameters (checked before anything is drawn): far beyond what looks like
# stripes, but they keep memory and time bounded (width=1e6 or period=1e-6 would need GBs).
LIMITS: dict[str, tuple[float, float]] = {
    "width": (0.0, 1000.0),  # px, sigma across a stripe (exclusive low)
    "length": (0.0, 1e6),  # px, sigma along a stripe (exclusive low)
    "amplitude": (0.0, 100.0),  # additive: fractions of the intensity range
    "density": (0.0, 100.0),  # stripes per 100 px: at most one per row
    "count": (0, 10_000),  # stripes per plane
    "period": (1.0, 1e6),  # px between regular bands
    "angle": (-80.0, 80.0),  # degrees from the x axis (exclusive)
}


@dataclass(frozen=True)
class StripeParams:
    """Parameters of the stripe degradation model (all lengths in pixels).

    Parameters
    ----------
    kind : str
        Stripe type, a name in the registry (:func:`stripe_kinds`): ``"regular"``,
        ``"gaussian"``, ``"tilted"`` or a registered kind. Default ``"gaussian"``.
    mode : {"additive", "multiplicative"}
        ``"multiplicative"`` (default) attenuates: ``I * (1 - A*S)``, the physical shadow of an
        absorber in the light sheet. ``"additive"`` adds ``A*S`` scaled to the image's range.
    density : float
        Gaussian and tilted stripes per 100 pixels across the stripes. Default 3.
    count : int or None
        Exact number of stripes per plane; overrides ``density`` when given.
    width : (float, float)
        Range of the Gaussian standard deviation across a stripe, drawn per stripe. For regular
        stripes, the standard deviation of each band. Default (0.8, 3.0).
    length : (float, float) or None
        Range of the Gaussian standard deviation along a stripe; ``None`` (default) makes stripes
        run through the whole image.
    amplitude : (float, float)
        Range of the stripe strength, drawn per stripe. Multiplicative: the attenuation at the
        stripe centre (0 = none, 1 = black). Additive: a fraction of the image's robust intensity
        range (0.1th to 99.9th percentile). Default (0.2, 0.7).
    polarity : {"dark", "bright", "mixed"}
        Additive mode only: whether stripes darken, brighten or do either. Default ``"dark"``.
    period : float
        Regular stripes: distance between bands. Default 12.
    angle : (float, float)
        Tilted stripes: range of angles from the x axis, in degrees. Default (-15, 15).
    per_slice : bool
        3D stacks: draw new stripes for every slice (True, default) or repeat one pattern through
        z (False, as when the absorbers sit upstream of the whole volume).
    seed : int or None
        Seed of the random generator; the same seed gives the same stripes. ``None`` draws fresh
        entropy. Default 0.
    """

    kind: StripeKind = "gaussian"
    mode: StripeMode = "multiplicative"
    density: float = 3.0
    count: int | None = None
    width: tuple[float, float] = (0.8, 3.0)
    length: tuple[float, float] | None = None
    amplitude: tuple[float, float] = (0.2, 0.7)
    polarity: Literal["dark", "bright", "mixed"] = "dark"
    period: float = 12.0
    angle: tuple[float, float] = (-15.0, 15.0)
    per_slice: bool = True
    seed: int | None = 0

    def __post_init__(self) -> None:
        _check_choice("kind", self.kind, stripe_kinds())
        _check_choice("mode", self.mode, STRIPE_MODES)
        _check_choice("polarity", self.polarity, POLARITIES)
        for name in ("width", "amplitude", "angle") + (("length",) if self.length else ()):
            pair = getattr(self, name)
            if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(map(_real, pair))):
                raise RestoreInputError(f"{name}={pair!r}: give a (low, high) pair of numbers.")
            lo, hi = pair
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
                raise RestoreInputError(f"{name}={(lo, hi)!r}: give a finite (low, high) range.")
            object.__setattr__(self, name, (float(lo), float(hi)))
        w_max, l_max = LIMITS["width"][1], LIMITS["length"][1]
        if self.width[0] <= 0 or self.width[1] > w_max:
            raise RestoreInputError(
                f"width={self.width!r}: stripe widths (sigma, px) must be positive and at most "
                f"{w_max:g}."
            )
        if self.length is not None and (self.length[0] <= 0 or self.length[1] > l_max):
            raise RestoreInputError(
                f"length={self.length!r}: stripe lengths (sigma, px) must be positive and at most "
                f"{l_max:g}."
            )
        if self.amplitude[0] < 0:
            raise RestoreInputError("amplitude must be >= 0; use polarity for bright stripes.")
        if self.mode == "multiplicative" and self.amplitude[1] > 1:
            raise RestoreInputError(
                f"amplitude={self.amplitude!r}: a multiplicative stripe attenuates by a fraction "
                "between 0 and 1."
            )
        a_max = LIMITS["amplitude"][1]
        if self.amplitude[1] > a_max:
            raise RestoreInputError(
                f"amplitude={self.amplitude!r}: additive stripes are at most {a_max:g} times "
                "the image's intensity range."
            )
        d_max, c_max = LIMITS["density"][1], LIMITS["count"][1]
        if not (_real(self.density) and 0 <= self.density <= d_max):  # NaN fails too
            raise RestoreInputError(
                f"density={self.density!r}: give 0 to {d_max:g} stripes per 100 pixels."
            )
        if self.count is not None:
            if not (_real(self.count) and float(self.count).is_integer()):
                raise RestoreInputError(f"count={self.count!r}: give a whole number of stripes.")
            if not 0 <= self.count <= c_max:
                raise RestoreInputError(
                    f"count={self.count!r}: give 0 to {c_max} stripes per plane."
                )
            object.__setattr__(self, "count", int(self.count))
        p_min, p_max = LIMITS["period"]
        if not (_real(self.period) and p_min <= self.period <= p_max):
            raise RestoreInputError(
                f"period={self.period!r}: regular bands must be {p_min:g} to {p_max:g} pixels "
                "apart."
            )
        if max(abs(self.angle[0]), abs(self.angle[1])) >= LIMITS["angle"][1]:
            raise RestoreInputError("angle must stay within +-80 degrees of the x axis.")
        if self.seed is not None and not (
            isinstance(self.seed, int | np.integer) and not isinstance(self.seed, bool)
        ):
            raise RestoreInputError(f"seed={self.seed!r}: give a whole number >= 0 or None.")
        if self.seed is not None and self.seed < 0:
            raise RestoreInputError(f"seed={self.seed!r}: give a whole number >= 0 or None.")

    def replace(self, **changes: Any) -> StripeParams:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """Short text for layer names and logs, e.g. ``"tilted mult. seed 0"``."""
        mode = "add." if self.mode == "additive" else "mult."
        return f"{self.kind} {mode} seed {self.seed}"


DrawField = Callable[[np.random.Generator, "StripeParams", tuple[int, int]], np.ndarray]
SampleParams = Callable[[np.random.Generator, dict[str, Any], tuple[int, int]], "StripeParams"]


@dataclass(frozen=True)
class StripeKindSpec:
    """One stripe kind of the registry.

    Attributes
    ----------
    name : str
        The ``kind`` value that selects it.
    parameters : tuple of str
        :class:`StripeParams` fields this kind reads besides the ones every kind reads
        (``mode``, ``amplitude``, ``polarity``, ``per_slice``, ``seed``); docks show only these.
    draw : callable
        ``draw(rng, params, (height, width)) -> float64 array (height, width)``: the summed
        signed amplitude (additive mode) or the summed log-transmission ``log(1 - a*s)``
        (multiplicative mode) of the stripes of one plane, running along x. Per-stripe
        strengths come from :func:`signed_amplitudes` so polarity and caps are shared.
    sample : callable
        ``sample(rng, common, (height, width)) -> StripeParams``: random parameters for one
        training patch; ``common`` holds the fields already drawn for every kind (``kind``,
        ``mode``, ``amplitude``, ``polarity``, ``seed``) to pass on.
    description : str
        One line for tooltips and ``--help``.
    """

    name: str
    parameters: tuple[str, ...]
    draw: DrawField
    sample: SampleParams
    description: str = ""


STRIPE_KIND_REGISTRY: dict[str, StripeKindSpec] = {}


def register_stripe_kind(spec: StripeKindSpec, *, replace: bool = False) -> StripeKindSpec:
    """Add a stripe kind to the registry (simulation, training, docks and CLI then offer it).

    Parameters
    ----------
    spec : StripeKindSpec
        The kind.
    replace : bool
        Allow replacing a registered kind of the same name.

    Returns
    -------
    StripeKindSpec
        ``spec``.
    """
    fields = {f.name for f in dataclasses.fields(StripeParams)}
    unknown = set(spec.parameters) - fields
    if unknown:
        raise ValueError(
            f"stripe kind {spec.name!r}: {sorted(unknown)} are not StripeParams fields"
        )
    if spec.name in STRIPE_KIND_REGISTRY and not replace:
        raise ValueError(f"stripe kind {spec.name!r} is already registered")
    STRIPE_KIND_REGISTRY[spec.name] = spec
    return spec


def unregister_stripe_kind(name: str) -> None:
    """Remove a registered stripe kind (the built-in ones cannot be removed)."""
    if name in STRIPE_KINDS:
        raise ValueError(f"{name!r} is a built-in stripe kind")
    STRIPE_KIND_REGISTRY.pop(name, None)


def stripe_kinds() -> tuple[str, ...]:
    """Names of all registered stripe kinds, built-in ones first."""
    return tuple(STRIPE_KIND_REGISTRY)


def get_stripe_kind(name: str) -> StripeKindSpec:
    """The registered kind ``name`` (:class:`RestoreInputError` if there is none)."""
    try:
        return STRIPE_KIND_REGISTRY[name]
    except KeyError:
        raise RestoreInputError(
            f"kind={name!r} is not one of {', '.join(stripe_kinds())}."
        ) from None


class StripeResult(NamedTuple):
    """Result of :func:`simulate_stripes`.

    Attributes
    ----------
    image : numpy.ndarray
        The striped image, dtype as requested.
    field : numpy.ndarray
        The stripe field, float32, same shape as ``image``. Multiplicative mode: the attenuation
        (0 = untouched, 1 = black), so ``image = clean * (1 - field)``. Additive mode: the added
        intensity in image units, so ``image = clean + field`` (before clipping).
    """

    image: np.ndarray
    field: np.ndarray


def _real(value: Any) -> bool:
    """A real number (bool and strings are not)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RestoreInputError(f"{name}={value!r} is not one of {', '.join(choices)}.")


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    lo, hi = bounds
    return rng.uniform(lo, hi, n) if hi > lo else np.full(n, float(lo))


def signed_amplitudes(rng: np.random.Generator, params: StripeParams, n: int) -> np.ndarray:
    """Per-stripe strengths; additive stripes get their sign from the polarity."""
    amp = _uniform(rng, params.amplitude, n)
    if params.mode == "multiplicative":
        return np.minimum(amp, _MAX_ATTENUATION)
    if params.polarity == "dark":
        return -amp
    if params.polarity == "mixed":
        return amp * rng.choice([-1.0, 1.0], n)
    return amp


def _regular_profile(rng: np.random.Generator, params: StripeParams, height: int) -> np.ndarray:
    """Sum (additive) or log-transmission (multiplicative) of regular bands along y."""
    phase = rng.uniform(0, params.period)
    centres = np.arange(phase - params.period, height + params.period, params.period)
    sigma = _uniform(rng, params.width, centres.size)
    amp = signed_amplitudes(rng, params, centres.size)
    y = np.arange(height, dtype=np.float64)[:, None]
    total = np.zeros(height)
    step = max(1, _CHUNK_ELEMENTS // max(1, height))  # bands per (height, bands) block
    for s in range(0, centres.size, step):
        c, sg, a = centres[None, s : s + step], sigma[None, s : s + step], amp[None, s : s + step]
        shape = np.exp(-0.5 * ((y - c) / sg) ** 2)
        total += (np.log1p(-a * shape) if params.mode == "multiplicative" else a * shape).sum(1)
    return total


def _stripe_count(params: StripeParams, extent: float) -> int:
    if params.count is not None:
        return int(params.count)
    return round(params.density * extent / 100.0)


def _line_stripes(
    rng: np.random.Generator, params: StripeParams, height: int, width: int, tilted: bool
) -> np.ndarray:
    """Accumulate Gaussian (optionally tilted) line stripes on an (height, width) grid.

    Returns the summed amplitude field (additive) or the summed log-transmission
    (multiplicative), float64, flattened to ``height * width``.
    """
    max_tan = np.tan(np.deg2rad(max(abs(params.angle[0]), abs(params.angle[1])))) if tilted else 0
    # Centre rows are drawn over the band of rows from which a stripe can still cross the image.
    y_lo, y_hi = -max_tan * width, height + max_tan * width
    n = _stripe_count(params, y_hi - y_lo)
    flat = np.zeros(height * width, dtype=np.float64)
    if n == 0:
        return flat
    y0 = rng.uniform(y_lo, y_hi, n)
    x0 = rng.uniform(0, width, n)
    theta = np.deg2rad(_uniform(rng, params.angle, n)) if tilted else np.zeros(n)
    sigma = _uniform(rng, params.width, n)
    length = _uniform(rng, params.length, n) if params.length is not None else None
    amp = signed_amplitudes(rng, params, n)

    cos, sin = np.cos(theta), np.sin(theta)
    # Rows each stripe can reach from its centre line in one column (vertical half-extent).
    # Stripes are processed in chunks of similar reach, so narrow ones do not pay for wide ones.
    reach = np.ceil(_TRUNCATE * sigma / cos).astype(np.int64) + 1
    # No centre line lies further than max_tan * width outside the image in any column, so
    # rows beyond that reach are never inside: wide stripes cost no more than the image.
    reach = np.minimum(reach, height + int(np.ceil(2 * max_tan * width)) + 2)
    order = np.argsort(reach, kind="stable")
    xs = np.arange(width, dtype=np.float64)
    for k in _chunks_by_reach(order, reach, width):
        offsets = np.arange(-reach[k].max(), reach[k].max() + 1, dtype=np.float64)
        dx = xs[None, :] - x0[k, None]  # (k, W)
        centre = y0[k, None] + dx * np.tan(theta[k])[:, None]  # centre row in every column
        rows = np.floor(centre)[:, :, None] + offsets[None, None, :]  # (k, W, R)
        dy = rows - y0[k, None, None]
        across = dy * cos[k, None, None] - dx[:, :, None] * sin[k, None, None]
        value = np.exp(-0.5 * (across / sigma[k, None, None]) ** 2)
        if length is not None:
            along = dx[:, :, None] * cos[k, None, None] + dy * sin[k, None, None]
            value *= np.exp(-0.5 * (along / length[k, None, None]) ** 2)
        if params.mode == "multiplicative":
            value = np.log1p(-amp[k, None, None] * value)
        else:
            value *= amp[k, None, None]
        inside = (rows >= 0) & (rows < height)
        index = rows.astype(np.int64) * width + xs.astype(np.int64)[None, :, None]
        flat += np.bincount(index[inside], weights=value[inside], minlength=height * width)
    return flat


def _chunks_by_reach(order: np.ndarray, reach: np.ndarray, width: int) -> Iterator[np.ndarray]:
    """Split stripe indices (sorted by reach) into chunks of bounded ``count * W * rows``."""
    start = 0
    while start < order.size:
        stop = start + 1
        while (
            stop < order.size
            and (stop + 1 - start) * width * (2 * reach[order[stop]] + 1) <= _CHUNK_ELEMENTS
        ):
            stop += 1
        yield order[start:stop]
        start = stop


def stripe_plane(
    shape: tuple[int, int], params: StripeParams, rng: np.random.Generator
) -> np.ndarray:
    """Draw the stripe field of one 2D plane.

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the plane; stripes run along the second axis (x).
    params : StripeParams
        Stripe model parameters (``params.seed`` is ignored here: ``rng`` is used).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        float32 field of ``shape``: the attenuation in [0, 1) for multiplicative stripes
        (negative where a kind's stripes brighten, as centred ``"bands"`` do), or the signed
        amplitude in units of the image range for additive stripes.
    """
    height, width = (int(s) for s in shape)
    plane = get_stripe_kind(params.kind).draw(rng, params, (height, width))
    if params.mode == "multiplicative":
        return (-np.expm1(plane)).astype(np.float32)  # 1 - transmission
    return plane.astype(np.float32)


# -- the built-in kinds: drawing and training samplers -------------------------------------


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A number drawn log-uniformly between ``lo`` and ``hi`` (both > 0); the stripe kinds'
    training samplers draw scales this way."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _draw_regular(
    rng: np.random.Generator, params: StripeParams, shape: tuple[int, int]
) -> np.ndarray:
    return np.broadcast_to(_regular_profile(rng, params, shape[0])[:, None], shape)


def _draw_gaussian(
    rng: np.random.Generator, params: StripeParams, shape: tuple[int, int]
) -> np.ndarray:
    return _line_stripes(rng, params, *shape, tilted=False).reshape(shape)


def _draw_tilted(
    rng: np.random.Generator, params: StripeParams, shape: tuple[int, int]
) -> np.ndarray:
    return _line_stripes(rng, params, *shape, tilted=True).reshape(shape)


def _sample_regular(
    rng: np.random.Generator, common: dict[str, Any], shape: tuple[int, int]
) -> StripeParams:
    """Period log-uniform 4 to 48 px, band sigma 0.5 px to a quarter period."""
    period = log_uniform(rng, 4.0, 48.0)
    w_lo = rng.uniform(0.5, max(0.5, period / 4))
    return StripeParams(
        **common, period=period, width=(w_lo, max(w_lo, rng.uniform(w_lo, period / 4)))
    )


def _sample_line(
    rng: np.random.Generator, common: dict[str, Any], shape: tuple[int, int], tilted: bool
) -> StripeParams:
    """Density log-uniform 0.5 to 15 per 100 px (at least one stripe); width sigma ``[w, w *
    U(1, 3)]`` with ``w`` log-uniform 0.5 to 5 px; full length with probability 0.6, else sigma
    along ``[L, 2L]``, ``L`` uniform 0.3 to 2 patch widths; tilted: a centre angle uniform in
    -20 to 20 degrees and a spread uniform in 0 to 10."""
    w_lo = log_uniform(rng, 0.5, 5.0)
    length = None
    if rng.random() >= 0.6:
        ell = rng.uniform(0.3, 2.0) * shape[1]
        length = (ell, 2 * ell)
    angle = (0.0, 0.0)
    if tilted:
        centre, spread = rng.uniform(-20, 20), rng.uniform(0, 10)
        angle = (centre - spread, centre + spread)
    # At least one stripe: a small patch at a low density would otherwise often get none.
    max_tan = math.tan(math.radians(max(abs(angle[0]), abs(angle[1]))))
    extent = shape[0] + 2 * max_tan * shape[1]  # rows from which a stripe can cross the patch
    count = max(1, round(log_uniform(rng, 0.5, 15.0) * extent / 100.0))
    return StripeParams(
        **common,
        count=count,
        width=(w_lo, w_lo * rng.uniform(1.0, 3.0)),
        length=length,
        angle=angle,
    )


for _spec in (
    StripeKindSpec(
        "regular",
        ("width", "period"),
        _draw_regular,
        _sample_regular,
        "bands parallel to x at a regular spacing",
    ),
    StripeKindSpec(
        "gaussian",
        ("density", "count", "width", "length"),
        _draw_gaussian,
        lambda rng, common, shape: _sample_line(rng, common, shape, tilted=False),
        "anisotropic Gaussian stripes at random rows",
    ),
    StripeKindSpec(
        "tilted",
        ("density", "count", "width", "length", "angle"),
        _draw_tilted,
        lambda rng, common, shape: _sample_line(rng, common, shape, tilted=True),
        "Gaussian stripes rotated by a few degrees",
    ),
):
    register_stripe_kind(_spec)


def simulate_stripes(
    image: np.ndarray,
    params: StripeParams | None = None,
    *,
    output_dtype: str | np.dtype = "input",
    intensity_range: float | None = None,
    baseline: float = 0.0,
    **overrides: Any,
) -> StripeResult:
    """Add synthetic stripe artifacts to a clean image or stack.

    Parameters
    ----------
    image : array_like
        2D image ``(Y, X)`` or stack ``(..., Y, X)``; stripes run along x (the last axis). Stacks
        are processed plane by plane, so dask or zarr arrays are read one plane at a time.
    params : StripeParams, optional
        Stripe model; defaults to ``StripeParams()``.
    output_dtype : "input" or dtype
        dtype of the striped image: the input's (default; integers are clipped to their range,
        never wrapped) or e.g. ``"float32"``.
    intensity_range : float, optional
        Scale of additive stripes in image units; default: the image's robust range
        (:func:`~napari_restore.core.arrays.robust_range`).
    baseline : float
        Camera offset in image units: a shadow attenuates only the signal above it,
        ``baseline + (I - baseline) * (1 - A*S)``. Default 0.
    **overrides
        Fields of :class:`StripeParams` to change, e.g. ``kind="tilted", seed=3``.

    Returns
    -------
    StripeResult
        ``(image, field)``: the striped image and the float32 stripe field.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import simulate_stripes
    >>> clean = np.full((64, 64), 1000, dtype=np.uint16)
    >>> striped, field = simulate_stripes(clean, kind="tilted", seed=1)
    >>> striped.dtype, float(field.max()) <= 1.0
    (dtype('uint16'), True)
    """
    gen = simulate_stripes_progress(
        image,
        params,
        output_dtype=output_dtype,
        intensity_range=intensity_range,
        baseline=baseline,
        **overrides,
    )
    return run_to_end(gen, progress_bar=False)


def simulate_stripes_progress(
    image: np.ndarray,
    params: StripeParams | None = None,
    *,
    output_dtype: str | np.dtype = "input",
    intensity_range: float | None = None,
    baseline: float = 0.0,
    **overrides: Any,
) -> ProgressGenerator[StripeResult]:
    """Generator form of :func:`simulate_stripes` (same arguments).

    Yields a :class:`~napari_restore.core.progress.Progress` after every plane (where a
    napari worker can be cancelled) and returns the :class:`StripeResult`.
    """
    params = params or StripeParams()
    if overrides:
        params = params.replace(**overrides)
    check_scalars(intensity_range=intensity_range, baseline=baseline)
    image = as_array_like(image)
    check_real_image(image)
    dtype = resolve_output_dtype(output_dtype, image.dtype)
    scale = 1.0
    if params.mode == "additive":
        scale = float(intensity_range) if intensity_range is not None else robust_range(image)
    out = np.empty(image.shape, dtype=dtype)
    field = np.empty(image.shape, dtype=np.float32)
    total = int(np.prod(image.shape[:-2]))
    planes = iter_striped_planes(image, params, scale=scale, baseline=baseline)
    for i, (index, degraded, plane_field) in enumerate(planes):
        out[index] = cast_clipped(degraded, dtype)
        field[index] = plane_field
        yield Progress(i + 1, total, stage="planes")
    return StripeResult(out, field)


def check_scalars(*, intensity_range: Any = None, baseline: Any = 0.0) -> None:
    """Refuse an ``intensity_range`` that is not a positive number up to ``MAX_ABS_VALUE``
    and a ``baseline`` that is not a finite number of at most that magnitude."""
    if intensity_range is not None and not (
        _real(intensity_range) and 0 < intensity_range <= MAX_ABS_VALUE
    ):
        raise RestoreInputError(
            f"intensity_range={intensity_range!r}: give a positive number up to "
            f"{MAX_ABS_VALUE:g} (image units), or None for the image's robust range."
        )
    if not (_real(baseline) and abs(baseline) <= MAX_ABS_VALUE):
        raise RestoreInputError(
            f"baseline={baseline!r}: give a finite camera offset of magnitude up to "
            f"{MAX_ABS_VALUE:g}."
        )


def _plane_rng(
    params: StripeParams, lead: tuple[int, ...], index: tuple[int, ...]
) -> np.random.Generator:
    """The generator of one plane: its own child seed per plane, or one shared by all."""
    n_planes = int(np.prod(lead)) if lead else 1
    flat = int(np.ravel_multi_index(index, lead)) if lead and params.per_slice else 0
    seeds = np.random.SeedSequence(params.seed).spawn(n_planes if params.per_slice else 1)
    return np.random.default_rng(seeds[flat])


def _degrade(
    clean: np.ndarray, field: np.ndarray, params: StripeParams, baseline: float
) -> np.ndarray:
    if params.mode == "multiplicative":
        return baseline + (clean - baseline) * (1.0 - field)
    return clean + field


def striped_plane_at(
    image: Any,
    params: StripeParams,
    index: tuple[int, ...],
    *,
    scale: float = 1.0,
    baseline: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Striped plane and field at one plane ``index`` of ``image``, as the full run makes them.

    Used for previews: the result equals that plane of :func:`simulate_stripes` (before the
    cast to the output dtype) without computing the other planes.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float64 striped plane and float32 field.
    """
    lead = tuple(image.shape[:-2])
    field = stripe_plane(tuple(image.shape[-2:]), params, _plane_rng(params, lead, index))
    if params.mode == "additive":
        field = field * np.float32(scale)
    clean = np.asarray(image[index], dtype=np.float64)
    return _degrade(clean, field, params, baseline), field


def iter_striped_planes(
    image: np.ndarray, params: StripeParams, *, scale: float = 1.0, baseline: float = 0.0
) -> Iterator[tuple[tuple[int, ...], np.ndarray, np.ndarray]]:
    """Yield ``(index, striped_plane, field_plane)`` for every 2D plane of ``image``.

    The streaming core of :func:`simulate_stripes`, for volumes that do not fit in memory: only
    one plane is read and produced at a time. ``striped_plane`` is float64, unclipped;
    ``scale`` multiplies additive fields (image units per unit amplitude); ``baseline`` is the
    camera offset that multiplicative stripes leave untouched.
    """
    lead = tuple(image.shape[:-2])
    n_planes = int(np.prod(lead)) if lead else 1
    seeds = np.random.SeedSequence(params.seed).spawn(n_planes if params.per_slice else 1)
    shared = None
    for i, index in enumerate(np.ndindex(*lead)):
        if params.per_slice or shared is None:
            shared = stripe_plane(tuple(image.shape[-2:]), params, np.random.default_rng(seeds[i]))
            if params.mode == "additive":
                shared = shared * np.float32(scale)
        clean = np.asarray(image[index], dtype=np.float64)
        yield index, _degrade(clean, shared, params, baseline), shared
