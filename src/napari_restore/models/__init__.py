"""Networks: a registry so that model files can rebuild them from their JSON metadata.

A model class registers itself with :func:`register_architecture` and exposes
``architecture() -> {"name": ..., "kwargs": {...}}``; :func:`build_model` turns that dictionary
back into a fresh network.
"""

from __future__ import annotations

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


def build_model(architecture: dict[str, Any]) -> nn.Module:
    """Build a network from ``{"name": ..., "kwargs": {...}}`` (as stored in model files).

    The settings are checked against the bounds of
    :data:`~napari_restore.engine.model_files.ARCHITECTURE_LIMITS` before anything is
    allocated; a bad one raises :class:`RestoreInputError` naming it.
    """
    from napari_restore.engine.model_files import validate_architecture

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
