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
import sys
import types
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
    "destripe": "napari_restore.destripe.infer",
    "destripe_file": "napari_restore.destripe.infer",
    "load_destripe_model": "napari_restore.destripe.infer",
    "detect_stripe_direction": "napari_restore.destripe.infer",
    "DestripeTrainer": "napari_restore.destripe.train",
    "DestripeTrainConfig": "napari_restore.destripe.train",
    "RestoreInputError": "napari_restore.errors",
    "denoise": "napari_restore.denoise.infer",
    "denoise_progress": "napari_restore.denoise.infer",
    "denoise_file": "napari_restore.denoise.infer",
    "load_denoise_model": "napari_restore.denoise.infer",
    "DenoiseTrainer": "napari_restore.denoise.train",
    "DenoiseTrainConfig": "napari_restore.denoise.train",
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


class _Package(types.ModuleType):
    """The package module: its public functions win over subpackages of the same name.

    ``napari_restore.destripe`` and ``napari_restore.denoise`` are both a public function and a
    subpackage. Importing a subpackage makes Python bind it as an attribute of its parent,
    which would replace the function; this keeps the function (``from napari_restore.destripe
    import infer`` and ``importlib.import_module`` still reach the subpackage).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
