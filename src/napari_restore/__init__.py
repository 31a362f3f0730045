"""napari-restore: remove stripe artifacts and noise from fluorescence microscopy images.

The public Python API (the same functions the napari docks and the ``napari-restore`` command
line call). Importing this package imports neither napari nor Qt, and loads the heavier modules
(torch, scipy) only when a function that needs them is first used.

Examples
--------
>>> import napari_restore as nr
>>> striped, field = nr.simulate_stripes(clean, kind="tilted", seed=0)   # doctest: +SKIP
>>> nr.compute_metrics(striped, clean).psnr                              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from napari_restore._version import __version__

_LAZY: dict[str, str] = {
    "StripeParams": "napari_restore.simulate",
    "simulate_stripes": "napari_restore.simulate",
    "simulate_noise": "napari_restore.simulate",
    "Metrics": "napari_restore.metrics",
    "compute_metrics": "napari_restore.metrics",
    "StripeMeasure": "napari_restore.stripe_meter",
    "measure_stripes": "napari_restore.stripe_meter",
    "open_image": "napari_restore.io",
    "read_image": "napari_restore.io",
    "write_image": "napari_restore.io",
    "load_sample": "napari_restore._sample_data",
    "destripe": "napari_restore.engine.destripe_infer",
    "destripe_file": "napari_restore.engine.destripe_infer",
    "load_destripe_model": "napari_restore.engine.destripe_infer",
    "detect_stripe_direction": "napari_restore.engine.destripe_infer",
    "DestripeTrainer": "napari_restore.engine.destripe_train",
    "DestripeTrainConfig": "napari_restore.engine.destripe_train",
    "RestoreInputError": "napari_restore.errors",
    "denoise": "napari_restore.engine.denoise_infer",
    "denoise_progress": "napari_restore.engine.denoise_infer",
    "denoise_file": "napari_restore.engine.denoise_infer",
    "load_denoise_model": "napari_restore.engine.denoise_infer",
    "DenoiseTrainer": "napari_restore.engine.denoise_train",
    "DenoiseTrainConfig": "napari_restore.engine.denoise_train",
    "SRDTrans": "napari_restore.models.srdtrans",
    "simulate_timelapse": "napari_restore.simulate.timelapse",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_restore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
