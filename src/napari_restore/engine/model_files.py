"""Model files: safetensors weights plus JSON metadata. Loading never unpickles.

A model saved as ``name.safetensors`` has its metadata in ``name.json`` beside it (readable by
people and by other tools) and a copy inside the safetensors header, so a weights file that
travels alone still describes itself. The metadata holds everything needed to rebuild the
network (``architecture``), how it was trained, on what data, its validation metrics and the
package version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from napari_restore._version import __version__
from napari_restore.core.files import atomic_path
from napari_restore.errors import RestoreInputError

# Tensors of the training state (e.g. Adam's moments) are stored under this prefix beside the
# weights, so training resumes exactly; loading a network for inference skips them.
OPTIMIZER_PREFIX = "_optimizer."
FORMAT = "napari-restore-model"
FORMAT_VERSION = 1
_HEADER_KEY = "napari_restore"


def model_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The ``(weights, metadata)`` paths of a model: ``x.safetensors`` and ``x.json``.

    Any of ``x``, ``x.safetensors`` or ``x.json`` names the same model.
    """
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_model_file(
    path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write weights (safetensors) and metadata (JSON), each atomically.

    Parameters
    ----------
    path : path-like
        ``x``, ``x.safetensors`` or ``x.json``; writes ``x.safetensors`` and ``x.json``.
    state_dict : dict of str to torch.Tensor
        Weights (moved to CPU and made contiguous here).
    metadata : dict
        Must hold ``task`` and ``architecture`` (``{"name": ..., "kwargs": {...}}``); the format
        tag and package version are added.

    Returns
    -------
    pathlib.Path
        The weights path.
    """
    for key in ("task", "architecture"):
        if key not in metadata:
            raise ValueError(f"model metadata needs {key!r}")
    weights, meta_path = model_paths(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    meta.setdefault("napari_restore_version", __version__)
    text = json.dumps(meta, indent=2, sort_keys=False, default=_json_default)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={_HEADER_KEY: text})
    with atomic_path(meta_path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return weights


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_model_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Metadata of a model file, from the JSON beside it or else from the safetensors header."""
    weights, meta_path = model_paths(path)
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise RestoreInputError(f"{meta_path} is not valid JSON: {err}") from err
    else:
        meta = _header_metadata(weights)
    if meta.get("format") != FORMAT:
        raise RestoreInputError(
            f"{weights} is not a napari-restore model (no '{FORMAT}' metadata). Models are "
            "made by the training dock, `napari-restore train-…`, or save_model_file()."
        )
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise RestoreInputError(
            f"{weights} was written by a newer napari-restore "
            f"({meta.get('napari_restore_version')}); please upgrade to load it."
        )
    return meta


def _header_metadata(weights: Path) -> dict[str, Any]:
    from safetensors import safe_open

    if not weights.exists():
        raise RestoreInputError(f"Model file not found: {weights}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            text = (f.metadata() or {}).get(_HEADER_KEY)
    except (SafetensorError, OSError) as err:
        raise RestoreInputError(f"{weights} is not a readable safetensors file: {err}") from err
    if text is None:
        raise RestoreInputError(f"{weights} has no napari-restore metadata and no JSON beside it.")
    return json.loads(text)


def load_model_file(
    path: str | os.PathLike[str], *, task: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read weights and metadata of a model file (safetensors: no code is ever unpickled).

    Parameters
    ----------
    path : path-like
        ``x``, ``x.safetensors`` or ``x.json``.
    task : str, optional
        Expected task (``"destripe"``, ``"denoise"``); a model for another task is refused.

    Returns
    -------
    (dict of str to torch.Tensor, dict)
        CPU weights and metadata.
    """
    weights, _ = model_paths(path)
    if not weights.exists():
        raise RestoreInputError(f"Model file not found: {weights}")
    meta = read_model_metadata(path)
    if task is not None and meta.get("task") != task:
        raise RestoreInputError(
            f"{weights} is a {meta.get('task')!r} model; a {task!r} model is needed here."
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as err:
        raise RestoreInputError(f"{weights} is not a readable safetensors file: {err}") from err
    return state, meta


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "auto", *, task: str | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network of a model file, whatever its task, from its metadata.

    Parameters
    ----------
    path : path-like
        ``x``, ``x.safetensors`` or ``x.json``.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda:N"`` or ``"mps"``.
    task : str, optional
        Expected task; a model of another task is refused. Default: any (read
        ``metadata["task"]`` to see which).

    Returns
    -------
    (torch.nn.Module, dict)
        The network (registered architecture, in eval mode on the device) and its metadata.
    """
    from napari_restore.core.device import resolve_device
    from napari_restore.models import build_model

    weights_path, _ = model_paths(path)
    state, meta = load_model_file(path, task=task)
    net = build_model(meta["architecture"])
    weights = {k: v for k, v in state.items() if not k.startswith(OPTIMIZER_PREFIX)}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise RestoreInputError(
            f"{weights_path}: the weights do not fit the network described in its metadata ({err})."
        ) from err
    return net.to(resolve_device(device)).eval(), meta
