"""Choosing and describing the torch device: ``auto | cpu | cuda | cuda:N | mps``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from napari_restore.errors import RestoreInputError


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Device choices for menus: ``"auto"``, ``"cpu"``, every ``"cuda:N"`` and ``"mps"``."""
    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        choices.append("mps")
    return choices


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn a device choice into a :class:`torch.device` that exists on this machine.

    Parameters
    ----------
    spec : str, torch.device or None
        ``"auto"`` / ``None`` (the first CUDA GPU, else Apple MPS, else the CPU), ``"cpu"``,
        ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    RestoreInputError
        If the device does not exist here, with the choices that do.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise RestoreInputError(
            f"Unknown device {spec!r}; choose one of {', '.join(available_devices())}."
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RestoreInputError(
                f"Device {spec!r} was asked for, but torch sees no CUDA GPU here (torch "
                f"{torch.__version__}). Use 'auto' or 'cpu', or install a CUDA build of torch."
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise RestoreInputError(
                f"Device {spec!r} does not exist: {torch.cuda.device_count()} CUDA GPU(s) here."
            )
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise RestoreInputError("Device 'mps' was asked for, but Apple MPS is not available here.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise RestoreInputError(f"Unsupported device {spec!r}; use cpu, cuda:N or mps.")
    return device


def describe_device(device: torch.device) -> str:
    """Human-readable name, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3)"`` or ``"cpu (2 threads)"``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (mixed precision); a no-op elsewhere.

    bf16 keeps float32's exponent range, so no loss scaling is needed for training.
    """
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def module_on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` itself if its parameters are on ``device``, else a copy moved there.

    Inference may run on another device than the training that owns the network (a trainer's
    model applied on the CPU while its optimizer state lives on the GPU): moving the network in
    place would break the next training step, so it is copied instead.
    """
    first = next(model.parameters(), None)
    if first is None or first.device == device:
        return model
    import copy

    return copy.deepcopy(model).to(device)


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device (None elsewhere: the CPU path does not size tiles by it)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def is_out_of_memory(err: BaseException) -> bool:
    """True for a device out-of-memory error (CUDA, or MPS's RuntimeError)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


@contextlib.contextmanager
def released_cache(device: torch.device) -> Iterator[None]:
    """Return cached CUDA blocks to the driver when a block of work ends (or fails)."""
    try:
        yield
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
