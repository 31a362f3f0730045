"""Heavy imports (torch, matplotlib, scipy) in a background thread, so opening a dock is quick.

Importing torch takes 2-7 s on a busy 2-core machine; done while napari builds a dock, it froze
the viewer for that long (issue 12). Docks now build from light modules only and ask for the
heavy ones here: one daemon thread imports them in order, and callbacks registered with
:func:`when_ready` run on the GUI thread once their modules are in. A job that starts before
then simply imports what it needs in its own worker thread.

(One part cannot move off the GUI thread's time: loading torch's C extension holds the GIL
for a few hundred ms, once per session.)
"""

from __future__ import annotations

import contextlib
import importlib
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

#: What the docks that run networks need: the device list, the engines, the model files.
TORCH_MODULES = (
    "torch",
    "napari_restore.core.device",
    "napari_restore.engine.model_files",
    "napari_restore.destripe.infer",
)
#: What the plots, metrics and the stripe meter need.
PLOT_MODULES = (
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
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


def _load() -> None:
    while True:
        name = _queue.get()
        if name not in sys.modules:
            try:
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
