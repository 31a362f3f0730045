"""Held-out real images and their synthetic stripes for the destriping benchmark.

Ground truth: two real fluorescence images that the shipped model never trains on, read from a
data directory given on the command line (never from inside the package or the tests):

- ``widefield_fly_nuclei_cellprofiler.tif`` (1006 x 1000 uint8, BSD-3): 512 x 512 crops at
  fixed corners.
- ``lsfm_idisco_brain_clearmap.tif`` (10 x 416 x 351 uint16 light sheet, GPL-3.0: benchmark
  use only): whole planes (smaller than 512 px).

Every crop is normalised on its own: clipped to its 0.1th and 99.9th percentiles and scaled to
[0, 1] (this also tames the few hot pixels of the ClearMap stack). So the clean crop spans
exactly [0, 1] and the data range of all metrics is 1.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_restore.simulate import StripeParams, simulate_stripes

GENERATORS = ("project", "independent", "blind")

FLY_FILE = "widefield_fly_nuclei_cellprofiler.tif"
CLEARMAP_FILE = "lsfm_idisco_brain_clearmap.tif"
CROP = 512
PERCENTILES = (0.1, 99.9)
STRIPE_TYPES: tuple[str, ...] = ("regular", "gaussian", "tilted")
TYPE_LABELS = {
    "regular": "regular horizontal",
    "gaussian": "Gaussian horizontal",
    "tilted": "Gaussian tilted",
}

# (file, region) of the full and the quick sets. A fly region is the (row, col) of the top-left
# corner of a 512 x 512 crop; a ClearMap region is a plane index.
FULL_SET: tuple[tuple[str, Any], ...] = (
    (FLY_FILE, (0, 0)),
    (FLY_FILE, (494, 488)),  # bottom-right corner
    (CLEARMAP_FILE, 2),
    (CLEARMAP_FILE, 5),
    (CLEARMAP_FILE, 8),
)
QUICK_SET: tuple[tuple[str, Any], ...] = ((FLY_FILE, (0, 0)), (CLEARMAP_FILE, 5))


@dataclass(frozen=True)
class Crop:
    """One clean ground-truth image of the benchmark.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"fly_r0_c0"`` or ``"clearmap_z5"``.
    source : str
        File name inside the data directory.
    region : str
        Where the crop comes from, in words.
    clean : numpy.ndarray
        float32 image in [0, 1] (after the percentile normalisation).
    clip : (float, float)
        Raw intensities of the 0.1th and 99.9th percentiles that were mapped to 0 and 1.
    """

    name: str
    source: str
    region: str
    clean: np.ndarray
    clip: tuple[float, float]

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (without pixels)."""
        return {
            "name": self.name,
            "source": self.source,
            "region": self.region,
            "shape": list(self.clean.shape),
            "clip_to_percentiles": list(PERCENTILES),
            "clip_raw_values": [float(v) for v in self.clip],
        }


def normalise(raw: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Clip to the 0.1th/99.9th percentiles and scale to [0, 1] (float32)."""
    raw = np.asarray(raw, dtype=np.float64)
    lo, hi = (float(v) for v in np.percentile(raw, PERCENTILES))
    if hi <= lo:
        raise ValueError("crop is constant after percentile clipping")
    return np.clip((raw - lo) / (hi - lo), 0.0, 1.0).astype(np.float32), (lo, hi)


def load_crops(data_dir: Path, quick: bool = False) -> list[Crop]:
    """Read the held-out images from ``data_dir`` and cut the benchmark crops.

    Raises
    ------
    FileNotFoundError
        With the expected path, when an image is missing.
    """
    data_dir = Path(data_dir)
    cache: dict[str, np.ndarray] = {}
    crops = []
    for file, region in QUICK_SET if quick else FULL_SET:
        path = data_dir / file
        if file not in cache:
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: pass --data-dir (see shared/data)")
            cache[file] = tifffile.imread(path)
        image = cache[file]
        if file == FLY_FILE:
            r, c = region
            raw = image[r : r + CROP, c : c + CROP]
            name, where = f"fly_r{r}_c{c}", f"rows {r}:{r + CROP}, cols {c}:{c + CROP}"
        else:
            raw = image[region, :CROP, :CROP]
            name, where = f"clearmap_z{region}", f"plane z={region} (whole plane)"
        clean, clip = normalise(raw)
        crops.append(Crop(name, file, where, clean, clip))
    return crops


def clip01(image: np.ndarray) -> np.ndarray:
    """Output clipped to the clean range [0, 1] (float64)."""
    return np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)


def fast_psnr(image: np.ndarray, clean: np.ndarray) -> float:
    """PSNR with the data range of ``clean`` (used to rank sweep settings)."""
    mse = float(np.mean((clip01(image) - clean) ** 2))
    rng = float(clean.max() - clean.min())
    return math.inf if mse == 0 else 10.0 * math.log10(rng * rng / mse)


def stripe_params(kind: str, mode: str) -> StripeParams:
    """The project's default stripe parameters for one type and mode (seed set per crop)."""
    return StripeParams(kind=kind, mode=mode)


def crop_seed(base_seed: int, type_index: int, crop_index: int) -> int:
    """Fixed seed of the stripes of one crop: ``base + 100 * type_index + crop_index``."""
    return base_seed + 100 * type_index + crop_index


def degrade(crop: Crop, params: StripeParams) -> np.ndarray:
    """Striped float32 version of a clean crop, clipped to [0, 1] as a detector would clip.

    (A no-op for multiplicative stripes; additive dark stripes on black background would
    otherwise go negative.)
    """
    striped = simulate_stripes(crop.clean, params, output_dtype="float32").image
    return np.clip(striped, 0.0, 1.0)


def striped_crops(
    crops: list[Crop], generator: str, kind: str, mode: str, seeds: list[int]
) -> list[np.ndarray]:
    """The crops with one stripe type of one stripe model, a seed each: ``"project"`` the
    simulator with the project's defaults (:func:`degrade`), ``"independent"`` and ``"blind"``
    the benchmark's own stripe models (``_independent_stripes.py``, ``_blind_stripes.py``)."""
    if generator == "project":
        params = stripe_params(kind, mode)
        return [degrade(c, params.replace(seed=s)) for c, s in zip(crops, seeds, strict=True)]
    import _blind_stripes
    import _independent_stripes

    module = {"independent": _independent_stripes, "blind": _blind_stripes}[generator]
    return [module.degrade(c.clean, kind, mode, s)[0] for c, s in zip(crops, seeds, strict=True)]


def params_dict(params: StripeParams) -> dict[str, Any]:
    """JSON-ready stripe parameters."""
    return {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(params).items()
    }


# ---------------------------------------------------------------------------------------------
# The held-out validation set (issue 9): whole *sources* of ../shared/data/train kept out of the
# training of the built-in model (scripts/train_destripe_model.py: VALIDATION_SOURCES), plus the
# two held-out images above. One plane per file (the middle plane of a stack), a centred square
# crop of at most HELDOUT_CROP px, normalised like the crops above. Category: the kind of image,
# reported separately (light-sheet; dense content; sparse objects on a dark background).
HELDOUT_CROP = 256
HELDOUT_SET: tuple[tuple[str, str], ...] = (
    ("train/lsfm_organoid_nuclei_lstree.tif", "light-sheet"),
    ("train/lsfm_organoid_nuclei_denoised_lstree.tif", "light-sheet"),
    ("train/lsfm_organoid_membrane_denoised_lstree.tif", "light-sheet"),
    (CLEARMAP_FILE, "light-sheet"),
    ("train/fluo_neocortex_ctip2_ndev.tif", "dense"),
    ("train/fluo_neocortex_brn2_ndev.tif", "dense"),
    ("train/fluo_neocortex_ror_ndev.tif", "dense"),
    ("train/fluo_pollen_grains_sdeconv.tif", "dense"),
    ("train/confocal_celegans_intestine_sdeconv.tif", "dense"),
    ("train/confocal_chromosomes_diplib.tif", "dense"),
    ("train/fluo_neuron_phalloidin_ndev.tif", "sparse"),
    ("train/fluo_neuron_ncoa4_ndev.tif", "sparse"),
    ("train/fluo_nuclei_terra_foci_spotiflow.tif", "sparse"),
    ("train/fluo_tissue_hybiss_spots_spotiflow.tif", "sparse"),
    ("train/widefield_scratch_assay_nuclei_ndev.tif", "sparse"),
    (FLY_FILE, "sparse"),
)


def load_heldout(data_dir: Path, size: int = HELDOUT_CROP) -> list[Crop]:
    """The held-out validation crops (:data:`HELDOUT_SET`); ``Crop.region`` starts with the
    category (``"light-sheet: ..."``)."""
    crops = []
    for file, category in HELDOUT_SET:
        path = Path(data_dir) / file
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: pass --data-dir (see shared/data)")
        image = tifffile.imread(path)
        z = image.shape[0] // 2 if image.ndim == 3 else None
        plane = image[z] if z is not None else image
        s = min(size, plane.shape[0], plane.shape[1]) // 2 * 2
        r0, c0 = (plane.shape[0] - s) // 2, (plane.shape[1] - s) // 2
        clean, clip = normalise(plane[r0 : r0 + s, c0 : c0 + s])
        where = f"{category}: " + (f"plane {z}, " if z is not None else "") + f"{s} px centre"
        name = Path(file).stem
        crops.append(Crop(name, file, where, clean, clip))
    return crops


def category(crop: Crop) -> str:
    """The kind of image of a held-out crop (``""`` for the classic set)."""
    head = crop.region.split(":", 1)[0]
    return head if head in {"light-sheet", "dense", "sparse"} else ""
