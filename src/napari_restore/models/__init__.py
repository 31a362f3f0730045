"""Networks: a registry so that model files can rebuild them from their JSON metadata.

A model class registers itself with :func:`register_architecture` and exposes
``architecture() -> {"name": ..., "kwargs": {...}}``; :func:`build_model` turns that dictionary
back into a fresh network.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from napari_restore.errors import RestoreInputError

_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
M = TypeVar("M", bound=type)


def register_architecture(name: str) -> Callable[[M], M]:
    """Class decorator that makes a network buildable by :func:`build_model` under ``name``."""

    def deco(cls: M) -> M:
        _ARCHITECTURES[name] = cls
        return cls

    return deco


def _import_builtin_models() -> None:
    # Imported lazily: registration happens on import of the modules that define the networks.
    import importlib

    for module in ("rescbam_unet", "srdtrans"):
        try:
            importlib.import_module(f"napari_restore.models.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"napari_restore.models.{module}":
                raise


# Bounds of the network settings a model file may ask for: generous for real models (the
# shipped ones use depth 4 / base 16 and patch_t 32 / embed 128) but small enough that no file
# can make napari-restore allocate gigabytes (depth=40 or patch_t=1.6e9 would). An entry is
# (kind, low, high); "ints" is a list of 1-6 integers each in [low, high].
ARCHITECTURE_LIMITS: dict[str, dict[str, tuple[str, float, float]]] = {
    "ResCBAMUNet": {
        "base_channels": ("int", 1, 256),
        "depth": ("int", 1, 6),
        "reduction": ("int", 1, 256),
        "use_cbam": ("bool", 0, 1),
        "use_residual": ("bool", 0, 1),
        "residual_learning": ("bool", 0, 1),
        "strip_context": ("bool", 0, 1),
    },
    "SRDTrans": {
        "patch_t": ("int", 2, 1024),
        "channels": ("ints", 1, 512),
        "embed_dim": ("int", 1, 1024),
        "heads": ("int", 1, 64),
        "temporal_layers": ("int", 1, 16),
        "spatial_blocks": ("int", 1, 16),
        "window": ("int", 1, 64),
        "mlp_ratio": ("float", 0.25, 16),
        "attn_drop": ("float", 0, 0.99),
    },
}
# Keys that files may leave out (their default then applies; files written before they existed).
OPTIONAL_ARCHITECTURE_KEYS: dict[str, frozenset[str]] = {
    "ResCBAMUNet": frozenset({"strip_context"}),
}
# The widest level of the U-Net (base_channels * 2**depth channels; 256 in the shipped model).
MAX_UNET_WIDTH = 2048


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_value(source: str, key: str, value: Any, kind: str, low: float, high: float) -> None:
    where = f"{source}: '{key}'"
    if kind == "bool":
        if not isinstance(value, bool):
            raise RestoreInputError(f"{where} must be true or false, not {value!r}.")
        return
    if kind == "ints":
        if not (isinstance(value, list | tuple) and 1 <= len(value) <= 6):
            raise RestoreInputError(
                f"{where} must be a list of 1 to 6 integers from {low:g} to {high:g}, "
                f"not {value!r}."
            )
        for k, v in enumerate(value):
            _check_value(source, f"{key}[{k}]", v, "int", low, high)
        return
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    numeric = _is_int(value) if kind == "int" else real
    if not numeric or not (low <= value <= high):  # NaN fails the comparison too
        what = "an integer" if kind == "int" else "a number"
        raise RestoreInputError(f"{where} must be {what} from {low:g} to {high:g}, not {value!r}.")


def validate_architecture(architecture: Any, *, source: str = "the model") -> None:
    """Check ``{"name": ..., "kwargs": {...}}`` against :data:`ARCHITECTURE_LIMITS`.

    Raises
    ------
    RestoreInputError
        Naming the key and its allowed values, for a missing or unknown key, a wrong type or
        a value out of range; nothing is allocated before this passes.
    """
    if not isinstance(architecture, dict):
        raise RestoreInputError(
            f"{source}: 'architecture' must be an object with 'name' and 'kwargs', "
            f"not {architecture!r}."
        )
    name = architecture.get("name")
    if not isinstance(name, str):
        raise RestoreInputError(
            f"{source}: 'architecture.name' must be one of {', '.join(ARCHITECTURE_LIMITS)}, "
            f"not {name!r}."
        )
    kwargs = architecture.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise RestoreInputError(
            f"{source}: 'architecture.kwargs' must be an object, not {kwargs!r}."
        )
    limits = ARCHITECTURE_LIMITS.get(name)
    if limits is None:
        return  # another registered network: build_model says whether it knows it
    optional = OPTIONAL_ARCHITECTURE_KEYS.get(name, frozenset())
    missing = [key for key in limits if key not in kwargs and key not in optional]
    if missing:
        raise RestoreInputError(
            f"{source}: the key 'architecture.kwargs.{missing[0]}' of {name} is missing."
        )
    unknown = sorted(set(kwargs) - set(limits))
    if unknown:
        raise RestoreInputError(
            f"{source}: 'architecture.kwargs' has unknown key(s) {', '.join(unknown)} for "
            f"{name}; allowed: {', '.join(limits)}."
        )
    for key, value in kwargs.items():
        _check_value(source, f"architecture.kwargs.{key}", value, *limits[key])
    if name == "ResCBAMUNet":
        width = kwargs["base_channels"] * 2 ** kwargs["depth"]
        if width > MAX_UNET_WIDTH:
            raise RestoreInputError(
                f"{source}: base_channels * 2**depth = {width}; at most {MAX_UNET_WIDTH} "
                "(the widest level of the network)."
            )
    if name == "SRDTrans":
        levels = len(kwargs["channels"])
        patch_t, embed, heads = kwargs["patch_t"], kwargs["embed_dim"], kwargs["heads"]
        if patch_t % 2**levels:
            raise RestoreInputError(
                f"{source}: 'architecture.kwargs.patch_t'={patch_t} must be a multiple of "
                f"{2**levels} (2 to the number of channels levels)."
            )
        if embed % heads:
            raise RestoreInputError(
                f"{source}: 'architecture.kwargs.embed_dim'={embed} must be divisible by "
                f"heads={heads}."
            )


def build_model(architecture: dict[str, Any]) -> nn.Module:
    """Build a network from ``{"name": ..., "kwargs": {...}}`` (as stored in model files).

    The settings are checked against the bounds of
    :data:`ARCHITECTURE_LIMITS` before anything is
    allocated; a bad one raises :class:`RestoreInputError` naming it.
    """
    validate_architecture(architecture, source="architecture")
    _import_builtin_models()
    name = architecture.get("name")
    if name not in _ARCHITECTURES:
        raise RestoreInputError(
            f"Unknown network {name!r} in the model file; this napari-restore knows "
            f"{', '.join(sorted(_ARCHITECTURES)) or 'none'}. Is the package up to date?"
        )
    try:
        return _ARCHITECTURES[name](**architecture.get("kwargs", {}))
    except (TypeError, ValueError) as err:  # settings another registered network refuses
        raise RestoreInputError(f"Cannot build the network {name!r}: {err}") from err
