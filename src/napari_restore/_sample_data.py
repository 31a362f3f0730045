"""Instant, offline sample data: real fluorescence images shipped in the package.

Sources and licenses: ``data/README.md`` in the package. Every function returns napari layer
data tuples and reads only local files (nothing is downloaded).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import numpy as np

LayerData = tuple[np.ndarray, dict[str, Any], str]

SAMPLES: dict[str, tuple[str, str]] = {
    # key: (file name, attribution shown in the layer metadata)
    "maize": ("maize_stem_confocal.tif", "D. Legland, CC-BY-4.0"),
    "nuclei": ("nuclei_dsb2018.tif", "DSB2018 / BBBC038, CC0; via stardist (BSD-3)"),
    "brain": ("brain_cortex_plane.tif", "brainglobe/cellfinder test data, BSD-3"),
    "tribolium": (
        "tribolium_lsfm_stack.tif",
        "D. Vorkel, Myers lab, MPI-CBG; via clEsperanto (BSD-3)",
    ),
    "smartspim": ("smartspim_striped.tif", "Allen Institute for Neural Dynamics, MIT"),
    "cancer_cells": ("cancer_cell_migration.tif", "J.-Y. Tinevez & G. Jacquemet, CC-BY-4.0"),
}

# The matched pair for the metrics panel: fixed seed, so it is the same on every machine.
PAIR_STRIPES: dict[str, Any] = {"kind": "tilted", "mode": "multiplicative", "seed": 7}


@cache
def _read(name: str) -> np.ndarray:
    import tifffile

    with resources.as_file(resources.files("napari_restore") / "data" / name) as path:
        data = tifffile.imread(path)
    data.setflags(write=False)  # cached: callers get a fresh copy from load_sample()
    return data


def load_sample(key: str) -> np.ndarray:
    """Return a copy of a shipped sample image.

    Parameters
    ----------
    key : str
        One of ``SAMPLES``: ``"maize"``, ``"nuclei"``, ``"brain"``, ``"tribolium"``,
        ``"smartspim"``, ``"cancer_cells"``.

    Returns
    -------
    numpy.ndarray
    """
    if key not in SAMPLES:
        raise KeyError(f"unknown sample {key!r}; choose one of {', '.join(SAMPLES)}")
    return _read(SAMPLES[key][0]).copy()


def _layer(key: str, name: str) -> LayerData:
    file_name, credit = SAMPLES[key]
    meta = {"source": f"napari-restore sample: {file_name}", "attribution": credit}
    return (load_sample(key), {"name": name, "metadata": meta}, "image")


def maize_stem() -> list[LayerData]:
    """Confocal maize stem section (clean; sharp walls: a good ground truth for stripes)."""
    return [_layer("maize", "maize stem (confocal)")]


def nuclei() -> list[LayerData]:
    """Fluorescent nuclei (DSB2018)."""
    return [_layer("nuclei", "nuclei (DSB2018)")]


def brain_cortex() -> list[LayerData]:
    """Mouse cortex plane with labelled cells (clean)."""
    return [_layer("brain", "brain cortex")]


def tribolium_stack() -> list[LayerData]:
    """Light-sheet z-stack of a Tribolium embryo (3D, clean)."""
    return [_layer("tribolium", "tribolium (light-sheet)")]


def smartspim_striped() -> list[LayerData]:
    """SmartSPIM light-sheet tile with real stripe artifacts."""
    return [_layer("smartspim", "SmartSPIM tile (real stripes)")]


def cancer_cells_timelapse() -> list[LayerData]:
    """Widefield time-lapse of migrating cancer cells (real noise; T, Y, X)."""
    return [_layer("cancer_cells", "cancer cells (time-lapse)")]


def stripe_pair() -> list[LayerData]:
    """A matched pair for the metrics panel: a clean light-sheet stack and the same with
    tilted stripes (new stripes in every plane, so per-slice metrics vary)."""
    from napari_restore.simulate import simulate_stripes

    clean = load_sample("tribolium")
    striped = simulate_stripes(clean, **PAIR_STRIPES).image
    contrast = [float(clean.min()), float(np.percentile(clean, 99.9))]
    meta = {"attribution": SAMPLES["tribolium"][1], "stripes": dict(PAIR_STRIPES)}
    return [
        (
            clean,
            {"name": "tribolium (ground truth)", "metadata": meta, "contrast_limits": contrast},
            "image",
        ),
        (
            striped,
            {"name": "tribolium (striped)", "metadata": meta, "contrast_limits": contrast},
            "image",
        ),
    ]


def noisy_timelapse_pair() -> list[LayerData]:
    """A synthetic low-light time-lapse (1.5 photons/pixel) and its noise-free truth.

    Drifting, blinking spots and filaments (:func:`~napari_restore.simulate.timelapse.
    simulate_timelapse`), for trying the Denoise dock and the Metrics panel at once.
    """
    from napari_restore.simulate.timelapse import simulate_timelapse

    result = simulate_timelapse((48, 128, 128), photons=1.5, seed=0)
    contrast = [float(result.clean.min()), float(np.percentile(result.clean, 99.9))]
    meta = {"attribution": "synthetic (napari-restore)", "photons_per_pixel": 1.5}
    return [
        (
            result.clean,
            {
                "name": "time-lapse (truth)",
                "metadata": meta,
                "contrast_limits": contrast,
                "visible": False,
            },
            "image",
        ),
        (
            result.noisy,
            {"name": "time-lapse (noisy)", "metadata": meta, "contrast_limits": contrast},
            "image",
        ),
    ]
