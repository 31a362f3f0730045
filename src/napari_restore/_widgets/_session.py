"""Models trained in this napari session, shared between docks.

A training dock publishes a *snapshot* (a copy on the CPU, so training can go on) of its network
here when training stops or ends; the apply docks list the published models next to the
built-in one and model files, so "train, then apply" needs no file in between.
"""

from __future__ import annotations

import copy
from typing import Any

from psygnal import Signal


class SessionModels:
    """Named ``(network, metadata)`` snapshots per task, with a change signal."""

    changed = Signal(str)  # emits the task whose models changed

    def __init__(self) -> None:
        self._models: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {}

    def publish(
        self, task: str, name: str, model: Any, metadata: dict[str, Any], *, copy: bool = True
    ) -> str:
        """Store a CPU copy of ``model`` under ``name`` (replacing an older one of that name).

        ``copy=False`` stores ``model`` itself: a copy made already (:func:`session_snapshot`,
        in a worker thread, as copying a network takes a while).
        """
        snapshot = _cpu_copy(model) if copy else model
        self._models.setdefault(task, {})[name] = (snapshot, dict(metadata))
        self.changed.emit(task)
        return name

    def names(self, task: str) -> list[str]:
        """Names of the published models of ``task``, oldest first."""
        return list(self._models.get(task, {}))

    def get(self, task: str, name: str) -> tuple[Any, dict[str, Any]]:
        """The ``(network, metadata)`` published under ``name``."""
        return self._models[task][name]


def _cpu_copy(model: Any) -> Any:
    return copy.deepcopy(model).to("cpu").eval()


def session_snapshot(trainer: Any) -> tuple[Any, dict[str, Any]] | None:
    """``(network copy, metadata)`` of a trainer for :meth:`SessionModels.publish` with
    ``copy=False`` (None before its first step). Made in the training worker."""
    if trainer is None or trainer.step == 0:
        return None
    return _cpu_copy(trainer.model), trainer.metadata()


#: The models of this napari session.
SESSION_MODELS = SessionModels()
