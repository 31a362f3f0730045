"""The trainer protocol both tasks implement, and the config base class.

A trainer owns a network, its optimizer and its history, and trains it as a generator:
:meth:`Trainer.train` yields a :class:`~napari_restore.core.progress.Progress` after every step
and returns :meth:`Trainer.summary`. The docks run it in a worker, the CLI and the Python API
with :func:`~napari_restore.core.progress.run_to_end`. The same names mean the same things for
every task:

``train(steps=None, minutes=None)``
    Train further (from where the last call stopped) for ``steps`` steps and/or ``minutes``;
    with neither, up to the config's own limit.
``stop()``
    Ask a running ``train()`` to end after the current step (closing the generator does the
    same at its next yield). Weights, ``step`` and ``history`` stay valid.
``evaluate()``
    Metrics of the current network on fixed data (a smooth measure of progress).
``summary()``
    ``steps``, ``steps_run``, ``seconds``, ``ms_per_step``, ``losses`` (last step),
    ``metrics`` (last evaluation) and ``stopped_by`` of the last ``train()``.
``metadata()`` / ``save(path)`` / ``resume(path, data, **overrides)``
    What a model file records; writing it; continuing from it.

Adding a model means a config (a frozen dataclass deriving :class:`TrainConfig`), a network
registered in :mod:`napari_restore.models`, and a :class:`Trainer` subclass that fills in
:meth:`Trainer._limits`, :meth:`Trainer._step`, :meth:`Trainer.evaluate`,
:meth:`Trainer.metadata` and :meth:`Trainer.resume`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from napari_restore.core.progress import Progress, ProgressGenerator

C = TypeVar("C", bound="TrainConfig")
T = TypeVar("T", bound="Trainer")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


class TrainConfig:
    """Base of the frozen dataclasses that hold a task's training settings.

    Every field has a default, so ``Config()`` holds the defaults the docks and the command
    line show.
    """

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of the settings (stored in model files)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def field_names(cls) -> set[str]:
        """Names of the settings."""
        return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], **overrides: Any) -> C:
        """Settings from :meth:`to_dict` output (unknown keys are ignored), then ``overrides``.

        Raises
        ------
        napari_restore.errors.RestoreInputError
            For an override that is not a setting.
        """
        from napari_restore.errors import RestoreInputError

        names = cls.field_names()
        unknown = set(overrides) - names
        if unknown:
            raise RestoreInputError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
        try:
            return cls(**{**{k: v for k, v in data.items() if k in names}, **overrides})
        except (TypeError, ValueError) as err:  # e.g. a saved setting of the wrong type
            if isinstance(err, RestoreInputError):
                raise
            raise RestoreInputError(f"Invalid training settings: {err}") from err


class Trainer(abc.ABC):
    """Base class of the trainers (see the module docstring for the protocol).

    Subclasses set :attr:`task`, :attr:`config`, :attr:`model`, :attr:`device`, :attr:`step`
    and :attr:`history` in their constructor and call ``super().__init__()``.
    """

    task: ClassVar[str]
    config: Any
    model: Any
    device: Any
    step: int
    history: list[dict[str, Any]]

    def __init__(self) -> None:
        self._stop_requested = False
        self._summary: dict[str, Any] = {}

    # -- the loop both tasks share ---------------------------------------------------------
    @abc.abstractmethod
    def _limits(
        self, steps: int | None, minutes: float | None
    ) -> tuple[int | None, float | None, str]:
        """``(stop_at_step, minutes, name)``: where this call ends, and the name reported as
        ``stopped_by`` when it ends there (e.g. ``"steps"``, ``"epochs"``)."""

    @abc.abstractmethod
    def _step(self, stop_at: int | None) -> Progress:
        """Run one optimisation step (incrementing :attr:`step`, appending to :attr:`history`)
        and return its report; ``stop_at`` is where this ``train()`` call ends."""

    def _finish(self) -> None:  # noqa: B027 (an optional hook, empty by default)
        """Hook run when a ``train()`` call ends by a limit, time or :meth:`stop`."""

    def train(
        self, steps: int | None = None, minutes: float | None = None
    ) -> ProgressGenerator[dict[str, Any]]:
        """Train, yielding a :class:`Progress` after every step; continue where the last call
        stopped.

        Parameters
        ----------
        steps : int, optional
            Steps to run in this call. Default: up to the config's limit.
        minutes : float, optional
            Time budget of this call (also stops at ``steps`` when both are given).

        Returns
        -------
        dict
            :meth:`summary`.
        """
        from napari_restore.errors import RestoreInputError

        if steps is not None and steps < 0:
            raise RestoreInputError(f"steps={steps} must be >= 0.")
        if minutes is not None and not (math.isfinite(minutes) and minutes >= 0):
            raise RestoreInputError(
                f"minutes={minutes} must be a finite number >= 0 (None: no time limit)."
            )
        stop_at, minutes, limit = self._limits(steps, minutes)
        if minutes is not None and not math.isfinite(minutes):  # e.g. from the config
            raise RestoreInputError(f"minutes={minutes} must be finite (None: no time limit).")
        deadline = time.monotonic() + 60.0 * minutes if minutes is not None else None
        self._stop_requested = False
        first, started = self.step, time.monotonic()
        losses: Mapping[str, float] = {}
        metrics: Mapping[str, float] = {}
        while True:
            if stop_at is not None and self.step >= stop_at:
                stopped_by = limit
                break
            if deadline is not None and time.monotonic() >= deadline:
                stopped_by = "time"
                break
            if self._stop_requested:
                stopped_by = "stop"
                break
            report = self._step(stop_at)
            if deadline is not None:
                # A time budget: the steps expected by the deadline at the pace so far, so
                # that the progress bar moves with the time (a total of 0 would not move).
                now = time.monotonic()
                pace = (now - started) / max(1, self.step - first)
                expected = self.step + int(max(0.0, deadline - now) / pace)
                total = min(report.total, expected) if report.total else expected
                report = dataclasses.replace(report, total=max(total, self.step))
            losses = report.losses or losses
            metrics = report.metrics or metrics
            self._record_summary(first, started, losses, metrics, "running")
            yield report
        self._finish()
        metrics = self._last_metrics() or metrics
        self._record_summary(first, started, losses, metrics, stopped_by)
        return self.summary()

    def _record_summary(
        self,
        first: int,
        started: float,
        losses: Mapping[str, float],
        metrics: Mapping[str, float],
        stopped_by: str,
    ) -> None:
        seconds = time.monotonic() - started
        run = self.step - first
        self._summary = {
            "steps": self.step,
            "steps_run": run,
            "seconds": seconds,
            "ms_per_step": 1000.0 * seconds / run if run else float("nan"),
            "losses": dict(losses),
            "metrics": dict(metrics),
            "stopped_by": stopped_by,
        }

    def _last_metrics(self) -> dict[str, float]:
        """Evaluation metrics recorded at the last step, if any (after :meth:`_finish`)."""
        return {}

    def stop(self) -> None:
        """End a running :meth:`train` after the current step (thread-safe: a flag)."""
        self._stop_requested = True

    def summary(self) -> dict[str, Any]:
        """What the last :meth:`train` did: ``steps`` (in all), ``steps_run``, ``seconds``,
        ``ms_per_step``, ``losses`` (last step), ``metrics`` (last evaluation) and
        ``stopped_by`` (the limit's name, ``"time"``, ``"stop"``; ``"running"`` during it)."""
        return dict(self._summary)

    # -- evaluation and files --------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Metrics of the current network on fixed data."""

    @abc.abstractmethod
    def metadata(self) -> dict[str, Any]:
        """Everything a model file records about this model (needs ``task`` and
        ``architecture``)."""

    def state_to_save(self) -> dict[str, Any]:
        """Tensors written to the model file (default: the network's weights)."""
        return dict(self.model.state_dict())

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        extra: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the model file (``x.safetensors`` + ``x.json``, atomically).

        Parameters
        ----------
        path : path-like
            ``x``, ``x.safetensors`` or ``x.json``.
        extra : dict, optional
            Entries added on top of :meth:`metadata`.
        overwrite : bool
            Replace an existing model file (else :class:`RestoreInputError`).

        Returns
        -------
        pathlib.Path
            The weights path.
        """
        from napari_restore.engine.model_files import save_model_file

        meta = self.metadata()
        if extra:
            meta.update(extra)
        return save_model_file(path, self.state_to_save(), meta, overwrite=overwrite)

    @classmethod
    @abc.abstractmethod
    def resume(cls: type[T], path: str | os.PathLike[str], data: Any, **overrides: Any) -> T:
        """A trainer that continues a saved model on ``data``, with settings changed by
        ``overrides``."""
