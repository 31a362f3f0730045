"""Model files: safetensors weights plus JSON metadata. Loading never unpickles.

A model saved as ``name.safetensors`` has its metadata in ``name.json`` beside it (readable by
people and by other tools) and a copy inside the safetensors header, so a weights file that
travels alone still describes itself. The metadata holds everything needed to rebuild the
network (``architecture``), how it was trained, on what data, its validation metrics and the
package version.
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from napari_restore._version import __version__
from napari_restore.core.files import atomic_path, check_outputs
from napari_restore.errors import RestoreInputError
from napari_restore.models import validate_architecture

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
    path: str | os.PathLike[str],
    state_dict: dict[str, torch.Tensor],
    metadata: dict[str, Any],
    *,
    overwrite: bool = False,
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
    overwrite : bool
        Replace an existing model file (else :class:`RestoreInputError`, before writing).

    Returns
    -------
    pathlib.Path
        The weights path.
    """
    for key in ("task", "architecture"):
        if key not in metadata:
            raise ValueError(f"model metadata needs {key!r}")
    weights, meta_path = model_paths(path)
    check_outputs([weights, meta_path], overwrite=overwrite)
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


def read_model_metadata(path: str | os.PathLike[str], *, task: str | None = None) -> dict[str, Any]:
    """Metadata of a model file, from the JSON beside it or else from the safetensors header,
    checked against the schema (:func:`validate_metadata`).

    Parameters
    ----------
    path : path-like
        ``x``, ``x.safetensors`` or ``x.json``.
    task : str, optional
        Expected task; a model for another task is refused (before the schema check).
    """
    weights, meta_path = model_paths(path)
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RestoreInputError(f"{meta_path} is not valid UTF-8 JSON: {err}") from err
        except OSError as err:
            raise RestoreInputError(f"Cannot read {meta_path}: {err.strerror or err}.") from err
    else:
        meta = _header_metadata(weights)
    if not isinstance(meta, dict):
        raise RestoreInputError(
            f"{meta_path}: the metadata is a JSON {type(meta).__name__}, not an object; the "
            "model file is damaged."
        )
    if meta.get("format") != FORMAT:
        raise RestoreInputError(
            f"{weights} is not a napari-restore model (no '{FORMAT}' metadata). Models are "
            "made by the training dock, `napari-restore train-…`, or save_model_file()."
        )
    version = meta.get("format_version", 0)
    if not _is_int(version):
        raise RestoreInputError(
            f"{meta_path}: 'format_version' must be an integer, not {version!r}."
        )
    if version > FORMAT_VERSION:
        raise RestoreInputError(
            f"{weights} was written by a newer napari-restore "
            f"({meta.get('napari_restore_version')}); please upgrade to load it."
        )
    if task is not None and meta.get("task") != task:
        raise RestoreInputError(
            f"{weights} is a {meta.get('task')!r} model; a {task!r} model is needed here."
        )
    validate_metadata(meta, source=str(meta_path if meta_path.exists() else weights))
    return meta


# -- the metadata schema (the network bounds are in napari_restore.models) ----------------------
TASKS = ("destripe", "denoise")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def validate_metadata(meta: dict[str, Any], *, source: str = "the model") -> None:
    """Check the keys of model metadata that napari-restore reads (task, architecture,
    normalisation, steps, training settings and histories) before anything is built.

    Raises
    ------
    RestoreInputError
        Naming the first key that is missing, of the wrong type or out of range.
    """
    task = meta.get("task")
    if task not in TASKS:
        raise RestoreInputError(
            f"{source}: 'task' must be one of {', '.join(TASKS)}, not {task!r}."
        )
    if "architecture" not in meta:
        raise RestoreInputError(f"{source}: the key 'architecture' is missing.")
    validate_architecture(meta["architecture"], source=source)
    steps = meta.get("steps", 0)
    if not _is_int(steps) or steps < 0:
        raise RestoreInputError(f"{source}: 'steps' must be an integer >= 0, not {steps!r}.")
    # "data" describes the training data: a list of files (destripe) or an object (denoise).
    for key in ("training", "losses", *(("data",) if task == "denoise" else ())):
        if not isinstance(meta.get(key, {}), dict):
            raise RestoreInputError(f"{source}: '{key}' must be an object, not {meta[key]!r}.")
    config = meta.get("training", {}).get("config", {})
    if config is not None and not isinstance(config, dict):
        raise RestoreInputError(f"{source}: 'training.config' must be an object, not {config!r}.")
    seconds = meta.get("training", {}).get("seconds", 0.0)
    if not (isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0):
        raise RestoreInputError(
            f"{source}: 'training.seconds' must be a number >= 0, not {seconds!r}."
        )
    for where, history in (
        ("validation_history", meta.get("validation_history", [])),
        ("losses.history", meta.get("losses", {}).get("history", [])),
    ):
        if not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
            raise RestoreInputError(f"{source}: '{where}' must be a list of objects.")
    for key in ("normalisation", "normalization"):
        norm = meta.get(key)
        if norm is None or isinstance(norm, str):  # old denoise files: a sentence
            continue
        if not isinstance(norm, dict):
            raise RestoreInputError(f"{source}: '{key}' must be an object, not {norm!r}.")
        method = norm.get("method", "")
        if not isinstance(method, str):
            raise RestoreInputError(f"{source}: '{key}.method' must be a string, not {method!r}.")
        if "percentiles" in norm:
            pct = norm["percentiles"]
            ok = (
                isinstance(pct, list)
                and len(pct) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pct)
                and 0 <= pct[0] < pct[1] <= 100
            )
            if not ok:
                raise RestoreInputError(
                    f"{source}: '{key}.percentiles' must be two numbers lo < hi from 0 to 100, "
                    f"not {pct!r}."
                )


def load_weights(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Any) -> None:
    """Load a model file's weights (its optimizer state skipped) into ``net``, strictly.

    Raises
    ------
    RestoreInputError
        Where names or shapes differ from the network's (instead of torch's RuntimeError).
    """
    weights = {k: v for k, v in state.items() if not k.startswith(OPTIMIZER_PREFIX)}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) or first[0]
        raise RestoreInputError(
            f"{path}: the weights do not fit the network described in its metadata "
            f"({detail}). The file is damaged or its JSON was edited."
        ) from err


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
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RestoreInputError(f"{weights}: its metadata is not valid JSON: {err}") from err


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
    meta = read_model_metadata(path, task=task)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as err:
        raise RestoreInputError(f"{weights} is not a readable safetensors file: {err}") from err
    for name, tensor in state.items():  # a NaN weight would turn every output into NaN
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RestoreInputError(
                f"{weights}: the tensor {name!r} holds NaN or infinite values; the model file "
                "is damaged (or its training diverged): retrain or use another copy."
            )
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
    load_weights(net, state, weights_path)
    return net.to(resolve_device(device)).eval(), meta
