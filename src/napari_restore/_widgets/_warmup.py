"""Heavy imports (torch, scipy, scikit-image) in a background thread, so opening a dock is quick.

Importing torch takes 2-7 s on a busy 2-core machine; done while napari builds a dock, it froze
the viewer for that long (issue 12). Docks now build from light modules only and ask for the
heavy ones here: one daemon thread imports them in order, and callbacks registered with
:func:`when_ready` run on the GUI thread once their modules are in. A job that starts before
then simply imports what it needs in its own worker thread.

Python's import loads a C extension while holding the GIL, and loading torch's shared
libraries takes ~0.3 s of relocations: the GUI thread stood still for that long even with the
import in another thread. :func:`preload_shared_libraries` therefore loads them first through
libc's ``dlopen`` called via ctypes, which releases the GIL for the call; the import then finds
them loaded and holds the GIL only for the module's own initialisation.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib
import importlib.util
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from napari_restore._widgets._priority import lower_thread_priority

#: What the docks that run networks need: the device list, the engines, the model files.
TORCH_MODULES = (
    "torch",
    "napari_restore.core.device",
    "napari_restore.engine.model_files",
    "napari_restore.destripe.infer",
)
#: What training needs beyond that: torch's optimizers import torch._dynamo (and sympy) on
#: their first construction, about 2 s of imports that hold the GIL for up to 0.2 s at a time;
#: imported after the dock opens instead of after Train is clicked, while the viewer shows
#: the training.
TRAINING_MODULES = (*TORCH_MODULES, "torch.optim", "torch._dynamo")
#: What the metrics and the stripe meter need.
PLOT_MODULES = (
    "napari_restore.metrics",
    "napari_restore.stripe_meter",
)

_queue: queue.Queue[str] = queue.Queue()
_thread: threading.Thread | None = None
_waiting: list[tuple[frozenset[str], Callable[[], None]]] = []
_notifier: Any = None
_lock = threading.Lock()
_pending = 0  # modules queued and not imported yet


def _make_notifier() -> Any:
    from qtpy.QtCore import QObject, Signal

    class Notifier(QObject):
        imported = Signal()

    notifier = Notifier()
    notifier.imported.connect(_run_ready_callbacks)
    return notifier


#: Packages whose compiled extensions are loaded GIL-free before their import.
SHARED_LIBRARIES = {"torch": ("_C*.so",)}


def preload_shared_libraries(package: str) -> list[str]:
    """Load ``package``'s big compiled extensions with the GIL released (POSIX only).

    The libraries are mapped with ``RTLD_LOCAL``, as Python's import would; the later import
    reuses them. Nothing is imported or initialised here, and any failure just leaves the
    work to the import itself.

    Parameters
    ----------
    package : str
        A top-level package named in :data:`SHARED_LIBRARIES` (others load nothing).

    Returns
    -------
    list of str
        The paths that were loaded.
    """
    patterns = SHARED_LIBRARIES.get(package, ())
    if not patterns or os.name != "posix" or package in sys.modules:
        return []
    try:
        spec = importlib.util.find_spec(package)
        folder = os.path.dirname(spec.origin) if spec and spec.origin else None
        if folder is None:
            return []
        # A ctypes foreign call (CDLL, unlike PyDLL) runs with the GIL released.
        dlopen = ctypes.CDLL(None).dlopen
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    except (ImportError, ValueError, OSError, AttributeError):
        return []
    flags = getattr(sys, "getdlopenflags", lambda: os.RTLD_NOW)() & ~os.RTLD_GLOBAL
    loaded = []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(folder, pattern))):
            if dlopen(os.fsencode(path), flags):
                loaded.append(path)
    return loaded


def _load() -> None:
    lower_thread_priority()  # the viewer's thread gets a core first while this imports
    while True:
        name = _queue.get()
        if name not in sys.modules:
            try:
                preload_shared_libraries(name.partition(".")[0])
                importlib.import_module(name)
                if name == "napari_restore.core.device":  # asks the GPU driver: slow at first
                    sys.modules[name].available_devices()
            except Exception:  # reported; the job that needs it reports it again
                traceback.print_exc()
        global _pending
        with _lock:
            _pending -= 1
        with contextlib.suppress(RuntimeError):  # the application is closing
            _notifier.imported.emit()


def imported(modules: Iterable[str]) -> bool:
    """Whether all of ``modules`` are imported."""
    return all(name in sys.modules for name in modules)


def preload(modules: Iterable[str]) -> None:
    """Import ``modules`` in the background thread (those not imported yet), in order.

    Call from the GUI thread.
    """
    global _thread, _notifier, _pending
    with _lock:
        if _notifier is None:
            _notifier = _make_notifier()
        for name in modules:
            if name not in sys.modules:
                _pending += 1
                _queue.put(name)
        if _thread is None:
            _thread = threading.Thread(target=_load, name="napari-restore-imports", daemon=True)
            _thread.start()


def busy() -> bool:
    """Whether the background thread still has modules to import."""
    return _pending > 0


def when_ready(modules: Iterable[str], callback: Callable[[], None]) -> None:
    """Run ``callback`` on the GUI thread once ``modules`` are imported (now if they are).

    The modules are queued for :func:`preload`. A callback whose widget is gone by then is
    skipped quietly.
    """
    needed = frozenset(modules)
    if imported(needed):
        callback()
        return
    _waiting.append((needed, callback))
    preload(modules)


def _run_ready_callbacks() -> None:
    ready = [(m, cb) for m, cb in _waiting if imported(m)]
    for item in ready:
        _waiting.remove(item)
    for _, callback in ready:
        try:
            callback()
        except RuntimeError as err:  # its Qt widget was deleted meanwhile: nothing to update
            if "deleted" not in str(err):
                traceback.print_exc()
