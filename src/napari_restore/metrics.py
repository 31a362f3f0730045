"""Image quality metrics against a ground truth: MAE, PSNR and SSIM.

Definitions (Wang et al., IEEE TIP 13(4), 600-612, 2004, with the settings of the destriping
paper):

- ``MAE  = mean(|x - y|)``
- ``PSNR = 10 log10(R^2 / mean((x - y)^2))``
- ``SSIM``: Gaussian window with sigma 1.5 truncated at 3.5 sigma (11 x 11), K1 = 0.01,
  K2 = 0.03, population covariances, averaged over the pixels whose window lies inside the
  image. This equals ``skimage.metrics.structural_similarity(x, y, data_range=R,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.

``R`` is the data range: by default ``max - min`` of the ground truth over the whole image or
stack, and it is reported with every result. Stacks ``(..., Y, X)`` are compared plane by plane
(so dask/zarr arrays are read one plane at a time): MAE and PSNR over all voxels, SSIM as the mean
of the 2D SSIM of every plane, and per-plane values of all three.

Two backends give the same numbers: ``"numpy"`` (scipy Gaussian filters, the reference) and
``"torch"`` (separable convolutions, for speed on a GPU).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from napari_restore.core.arrays import as_array_like, finite_float64
from napari_restore.core.files import write_csv_rows
from napari_restore.core.progress import Progress, ProgressGenerator, each_or_error, run_to_end
from napari_restore.errors import RestoreInputError

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5, as scipy.ndimage computes it
Backend = Literal["numpy", "torch"]


@dataclass(frozen=True)
class Metrics:
    """MAE, PSNR and SSIM of an image against a ground truth.

    Attributes
    ----------
    mae, psnr, ssim : float
        Whole-image values (``psnr`` is ``inf`` for identical images).
    data_range : float
        The ``R`` used by PSNR and SSIM.
    data_range_source : str
        ``"ground truth"`` (max - min of the ground truth) or ``"user"``.
    per_slice : dict of str to numpy.ndarray
        For stacks: ``"mae"``, ``"psnr"``, ``"ssim"`` per plane (planes in C order of the
        leading axes). Empty for 2D images.
    shape : tuple of int
        Shape of the compared arrays.
    """

    mae: float
    psnr: float
    ssim: float
    data_range: float
    data_range_source: str
    per_slice: dict[str, np.ndarray] = field(default_factory=dict)
    shape: tuple[int, ...] = ()

    @property
    def ssim_mode(self) -> str:
        """How SSIM was aggregated, in words."""
        return "mean of 2D plane SSIM" if self.per_slice else "2D"

    def as_dict(self, per_slice: bool = True) -> dict[str, Any]:
        """JSON-ready dictionary (an infinite PSNR becomes the string ``"inf"``)."""

        def num(v: float) -> float | str:
            return "inf" if math.isinf(v) else float(v)

        out: dict[str, Any] = {
            "mae": float(self.mae),
            "psnr": num(self.psnr),
            "ssim": float(self.ssim),
            "data_range": float(self.data_range),
            "data_range_source": self.data_range_source,
            "ssim_mode": self.ssim_mode,
            "shape": list(self.shape),
        }
        if per_slice and self.per_slice:
            out["per_slice"] = {k: [num(x) for x in v] for k, v in self.per_slice.items()}
        return out


def _gaussian_kernel() -> np.ndarray:
    """The normalised 1D Gaussian that scipy.ndimage.gaussian_filter uses (sigma 1.5, r 5)."""
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return k / k.sum()


def _ssim_numpy(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    r = SSIM_RADIUS
    return float(s[r:-r, r:-r].mean(dtype=np.float64))


def _plane_numpy(x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[float, float, float]:
    d = x - y
    return float(np.abs(d).mean()), float((d * d).mean()), _ssim_numpy(x, y, data_range)


class _TorchPlaneMetrics:
    """Same numbers as the numpy path, with separable convolutions on a torch device."""

    def __init__(self, device: Any = None) -> None:
        import torch

        from napari_restore.core.device import resolve_device

        self.torch = torch
        self.device = resolve_device(device)
        # float64 wherever the device has it (MPS has not: float32 there, ~1e-5 agreement).
        self.dtype = torch.float32 if self.device.type == "mps" else torch.float64
        k = torch.as_tensor(_gaussian_kernel(), dtype=self.dtype, device=self.device)
        self.kx = k.view(1, 1, 1, -1)
        self.ky = k.view(1, 1, -1, 1)

    def _blur_valid(self, a: Any) -> Any:
        # The valid region of the separable filter is exactly the window-inside crop of SSIM.
        f = self.torch.nn.functional
        return f.conv2d(f.conv2d(a, self.kx), self.ky)

    def __call__(self, x: np.ndarray, y: np.ndarray, data_range: float) -> tuple[float, ...]:
        t = self.torch
        xt = t.as_tensor(x, dtype=self.dtype, device=self.device)[None, None]
        yt = t.as_tensor(y, dtype=self.dtype, device=self.device)[None, None]
        d = xt - yt
        mae, mse = d.abs().mean(), (d * d).mean()
        stack = t.cat([xt, yt, xt * xt, yt * yt, xt * yt], dim=0)
        ux, uy, uxx, uyy, uxy = self._blur_valid(stack)
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
        c1 = (SSIM_K1 * data_range) ** 2
        c2 = (SSIM_K2 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        return float(mae), float(mse), float(s.mean())


def _planes(a: Any) -> Iterator[tuple[tuple[int, ...], Any]]:
    for index in np.ndindex(*a.shape[:-2]):
        yield index, a[index]


def _as_float_plane(plane: Any, name: str) -> np.ndarray:
    return finite_float64(
        plane,
        f"{name} contains NaN or infinite values; replace them (e.g. with np.nan_to_num) "
        "before computing metrics.",
    )


def validate_pair(image: Any, ground_truth: Any, *, rgb: bool | None = None) -> None:
    """Check that two arrays can be compared; raise :class:`RestoreInputError` otherwise.

    Parameters
    ----------
    image, ground_truth : array_like
        Arrays with ``shape`` and ``dtype`` (numpy, dask, zarr ...); nothing is read.
    rgb : bool, optional
        Whether the data are RGB(A) colour (napari's ``layer.rgb``). ``None`` guesses: a 3D
        array whose last axis has 3 or 4 entries is taken as colour.
    """
    for name, a in (("image", image), ("ground truth", ground_truth)):
        dtype = np.dtype(a.dtype)
        if dtype.kind == "c":
            raise RestoreInputError(
                f"The {name} is complex ({dtype}); compare magnitudes (np.abs) instead."
            )
        if dtype.kind not in "buif":
            raise RestoreInputError(f"The {name} has dtype {dtype}; numeric data are needed.")
        if 0 in tuple(a.shape):
            raise RestoreInputError(f"The {name} is empty (shape {tuple(a.shape)}).")
        looks_rgb = len(a.shape) == 3 and a.shape[-1] in (3, 4) and a.shape[0] > 4
        if rgb or (rgb is None and looks_rgb):
            raise RestoreInputError(
                f"The {name} looks like an RGB(A) colour image (shape {tuple(a.shape)}); "
                "metrics need greyscale data: split the channels or convert to grey first."
            )
        if len(a.shape) < 2 or min(a.shape[-2:]) < 2 * SSIM_RADIUS + 1:
            raise RestoreInputError(
                f"The {name} has shape {tuple(a.shape)}; SSIM needs planes of at least "
                f"{2 * SSIM_RADIUS + 1} x {2 * SSIM_RADIUS + 1} pixels."
            )
    if tuple(image.shape) != tuple(ground_truth.shape):
        raise RestoreInputError(
            f"Shape mismatch: image {tuple(image.shape)} vs ground truth "
            f"{tuple(ground_truth.shape)}. Compare images of the same size (crop or resample)."
        )


def ground_truth_range(ground_truth: Any) -> float:
    """``max - min`` of the ground truth, read plane by plane.

    Raises
    ------
    RestoreInputError
        If the ground truth is constant (the range is 0) or not finite.
    """
    lo, hi = math.inf, -math.inf
    for _, plane in _planes(ground_truth):
        p = _as_float_plane(plane, "The ground truth")
        lo, hi = min(lo, float(p.min())), max(hi, float(p.max()))
    if not hi > lo:
        raise RestoreInputError(
            f"The ground truth is constant (every pixel is {lo:g}), so its data range is 0 and "
            "PSNR/SSIM are undefined. Pick another ground truth or pass data_range explicitly."
        )
    return hi - lo


def compute_metrics(
    image: Any,
    ground_truth: Any,
    *,
    data_range: float | None = None,
    backend: Backend = "numpy",
    device: Any = None,
    rgb: bool | None = None,
) -> Metrics:
    """Compare an image (or stack) with its ground truth by MAE, PSNR and SSIM.

    Parameters
    ----------
    image : array_like
        Image to assess, ``(Y, X)`` or ``(..., Y, X)``: numpy, dask or zarr.
    ground_truth : array_like
        Reference of the same shape.
    data_range : float, optional
        ``R`` for PSNR and SSIM; default ``max - min`` of the ground truth.
    backend : {"numpy", "torch"}
        Implementation; both return the same values (to ~1e-12 in float64).
    device : str or torch.device, optional
        Device of the torch backend (``"auto"`` picks a GPU when there is one).
    rgb : bool, optional
        Set True for colour layers (they are refused with a clear message); None guesses.

    Returns
    -------
    Metrics
        Whole-image values, the data range used, and per-plane values for stacks.

    Raises
    ------
    RestoreInputError
        For mismatched shapes, NaN/Inf, a constant ground truth, complex or RGB data.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_restore import compute_metrics
    >>> gt = np.arange(256.0).reshape(16, 16)
    >>> m = compute_metrics(gt + 1.0, gt)
    >>> round(m.mae, 3), round(m.psnr, 2), m.data_range
    (1.0, 48.13, 255.0)
    """
    gen = compute_metrics_progress(
        image, ground_truth, data_range=data_range, backend=backend, device=device, rgb=rgb
    )
    return run_to_end(gen, progress_bar=False)


def compute_metrics_progress(
    image: Any,
    ground_truth: Any,
    *,
    data_range: float | None = None,
    backend: Backend = "numpy",
    device: Any = None,
    rgb: bool | None = None,
) -> ProgressGenerator[Metrics]:
    """Generator form of :func:`compute_metrics` (same arguments).

    Validates everything before the first yield, then yields a
    :class:`~napari_restore.core.progress.Progress` per plane and returns the
    :class:`Metrics`.
    """
    image, ground_truth = as_array_like(image), as_array_like(ground_truth)
    validate_pair(image, ground_truth, rgb=rgb)
    if data_range is None:
        data_range, source = ground_truth_range(ground_truth), "ground truth"
    else:
        data_range, source = float(data_range), "user"
        if not (data_range > 0 and math.isfinite(data_range)):
            raise RestoreInputError(f"data_range={data_range!r}: give a positive, finite number.")
    if backend == "numpy":
        plane_fn: Callable[..., tuple[float, ...]] = _plane_numpy
    elif backend == "torch":
        plane_fn = _TorchPlaneMetrics(device)
    else:
        raise RestoreInputError(f"backend={backend!r} is not 'numpy' or 'torch'.")

    lead = tuple(image.shape[:-2])
    total = int(np.prod(lead)) if lead else 1
    maes, mses, ssims = np.empty(total), np.empty(total), np.empty(total)
    for i, (index, x) in enumerate(_planes(image)):
        xp = _as_float_plane(x, "The image")
        yp = _as_float_plane(ground_truth[index], "The ground truth")
        maes[i], mses[i], ssims[i] = plane_fn(xp, yp, data_range)
        yield Progress(i + 1, total, stage="planes")
    per_slice: dict[str, np.ndarray] = {}
    if lead:
        per_slice = {"mae": maes, "psnr": _psnr(mses, data_range), "ssim": ssims}
    return Metrics(
        mae=float(maes.mean()),
        psnr=float(_psnr(np.array([mses.mean()]), data_range)[0]),
        ssim=float(ssims.mean()),
        data_range=float(data_range),
        data_range_source=source,
        per_slice=per_slice,
        shape=tuple(int(s) for s in image.shape),
    )


def _psnr(mse: np.ndarray, data_range: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def compare_progress(
    images: Sequence[Any],
    ground_truth: Any,
    *,
    data_range: float | None = None,
    backend: Backend = "numpy",
    device: Any = None,
    rgb: Sequence[bool | None] | None = None,
) -> ProgressGenerator[list[Metrics | RestoreInputError]]:
    """Compare several images with one ground truth; a bad image does not stop the others.

    Parameters
    ----------
    images : sequence of array_like
        Images to assess.
    ground_truth : array_like
        The common reference.
    data_range, backend, device
        As in :func:`compute_metrics`.
    rgb : sequence of bool or None, optional
        Per image, whether it is a colour image (see :func:`validate_pair`).

    Yields
    ------
    Progress
        Planes done over all images.

    Returns
    -------
    list
        Per image, its :class:`Metrics` or the :class:`RestoreInputError` that explains why
        it could not be compared.
    """
    lead = tuple(ground_truth.shape[:-2])
    parts = [
        compute_metrics_progress(
            image,
            ground_truth,
            data_range=data_range,
            backend=backend,
            device=device,
            rgb=None if rgb is None else rgb[i],
        )
        for i, image in enumerate(images)
    ]
    return (yield from each_or_error(parts, units=int(np.prod(lead)) if lead else 1))


CSV_COLUMNS = (
    "image",
    "ground_truth",
    "plane",
    "mae",
    "psnr",
    "ssim",
    "data_range",
    "data_range_source",
)


def metrics_rows(name: str, ground_truth: str, m: Metrics) -> list[dict[str, Any]]:
    """Table rows of one result: the whole image (``plane="all"``), then one row per plane."""
    base = {
        "image": name,
        "ground_truth": ground_truth,
        "data_range": m.data_range,
        "data_range_source": m.data_range_source,
    }
    rows = [{**base, "plane": "all", "mae": m.mae, "psnr": m.psnr, "ssim": m.ssim}]
    if m.per_slice:
        for i, (a, p, s) in enumerate(
            zip(*(m.per_slice[k] for k in ("mae", "psnr", "ssim")), strict=True)
        ):
            rows.append({**base, "plane": i, "mae": a, "psnr": p, "ssim": s})
    return rows


def write_metrics_csv(
    path: str | os.PathLike[str], rows: Sequence[dict[str, Any]], *, overwrite: bool = False
) -> Path:
    """Write metric rows (see :func:`metrics_rows`) to a CSV file, atomically.

    Parameters
    ----------
    path : path-like
        Output ``.csv`` file.
    rows : sequence of dict
        Rows with the keys of ``CSV_COLUMNS``.
    overwrite : bool
        Replace an existing file (else :class:`RestoreInputError`, before writing).

    Returns
    -------
    pathlib.Path
    """
    return write_csv_rows(path, rows, CSV_COLUMNS, overwrite=overwrite)
