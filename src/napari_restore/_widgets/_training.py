"""Pieces shared by the docks that train models: device choice, live curves, previews.

A training dock owns a *trainer* (engine object with ``train()`` generator, ``save(path)``,
``step`` and ``history``); the worker runs ``trainer.train()``, and Stop closes that generator at
its next yield, so the trainer keeps its weights and can be saved or trained further.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton

from napari_restore._widgets import _warmup
from napari_restore._widgets._common import error_text
from napari_restore._widgets._plot import LinePlot
from napari_restore.core.progress import Progress
from napari_restore.errors import RestoreInputError


def device_chooser() -> tuple[ComboBox, Label, Container]:
    """A device menu (auto, cpu, cuda:N, mps) and a line saying what "auto" resolves to.

    The menu starts with "auto" and "cpu"; the GPUs are listed once torch is imported in the
    background (:mod:`._warmup`), so that opening a dock does not wait for torch.
    """
    combo = ComboBox(
        label="device",
        choices=["auto", "cpu"],
        value="auto",
        tooltip="Where the network runs; auto picks a GPU when there is one, else the CPU.",
    )
    using = Label(value="(looking for GPUs…)", label="")

    def update(*_: Any) -> None:
        if not _warmup.imported(["napari_restore.core.device"]):
            return
        from napari_restore.core.device import describe_device, resolve_device

        try:
            using.value = f"uses {describe_device(resolve_device(combo.value))}"
        except ValueError as err:
            using.value = str(err)

    def devices_known() -> None:
        from napari_restore.core.device import available_devices

        value = combo.value
        combo.choices = available_devices()
        if value in combo.choices:
            combo.value = value
        update()

    combo.changed.connect(update)
    _warmup.when_ready(_warmup.TORCH_MODULES, devices_known)
    # The row carries the label: the dock shows "device" beside the menu.
    row = Container(widgets=[combo, using], labels=False, label="device")
    row.margins = (0, 0, 0, 0)
    return combo, using, row


def row(*widgets: Any, label: str) -> Container:
    """Widgets side by side under one label."""
    box = Container(widgets=list(widgets), layout="horizontal", labels=False, label=label)
    box.margins = (0, 0, 0, 0)
    return box


class TrainingDock:
    """What every training dock shares: New model, Save / Load buttons around its own
    ``load(path)``, saving, and offering the trained network to the apply docks.

    The dock provides ``TASK``, ``trainer``, ``runner`` (a JobRunner), ``curves``,
    ``save_path`` and ``load_path`` (FileEdits), ``status`` (a Label), ``_life`` (its
    DockLifetime), ``load(path)`` and ``_session_name()``; errors meant for users end up in the
    status line.
    """

    TASK: str
    trainer: Any
    runner: Any
    curves: Any
    save_path: Any
    load_path: Any
    status: Any
    _life: Any

    def load(self, path: Any) -> None:
        raise NotImplementedError

    def _session_name(self) -> str:
        raise NotImplementedError

    def new_model(self, *_: Any) -> None:
        """Forget the current network; the next Train starts from scratch."""
        if self.runner.running:
            self.status.value = "Stop the training first."
            return
        self.trainer = None
        self.curves.reset()
        self.status.value = "The next Train starts a new model."

    def save(self, path: Any) -> Path:
        """Save the network trained here (safetensors + JSON)."""
        if self.trainer is None or self.trainer.step == 0:
            raise RestoreInputError("There is no trained model yet: click Train first.")
        if self.runner.running:
            raise RestoreInputError("Stop the training before saving.")
        # The file widget is a save dialog, which asks before replacing a file.
        return self.trainer.save(path, overwrite=True)

    def _publish(self, snapshot: tuple[Any, dict[str, Any]] | None) -> None:
        """Offer the network (a snapshot from :func:`session_snapshot`) to the apply docks."""
        from napari_restore._widgets._session import SESSION_MODELS

        self.curves.redraw()
        if snapshot is not None and self._life.alive:
            model, metadata = snapshot
            SESSION_MODELS.publish(self.TASK, self._session_name(), model, metadata, copy=False)

    def _model_file_widgets(self) -> list[Any]:
        """Two rows: "save as" file + Save model, "load model" file + Load model (resume)."""
        self.save_path = FileEdit(label="save as", mode="w", filter="*.safetensors")
        self.save_button = PushButton(text="Save model")
        self.load_path = FileEdit(label="load", mode="r", filter="*.safetensors")
        self.load_button = PushButton(text="Load model", tooltip="Load the file to resume training")
        self.save_button.changed.connect(self._save_clicked)
        self.load_button.changed.connect(self._load_clicked)
        # Each file with its button on one line: the docks stay short.
        return [
            row(self.save_path, self.save_button, label="save as"),
            row(self.load_path, self.load_button, label="load model"),
        ]

    def _save_clicked(self, *_: Any) -> None:
        path = self.save_path.value
        if path is None or str(path) in ("", "."):
            self.status.value = "Choose a file name to save to."
            return
        try:
            self.status.value = f"saved {self.save(path)}"
        except (RestoreInputError, OSError) as err:
            self.status.value = f"Error: {error_text(err)}"

    def _load_clicked(self, *_: Any) -> None:
        path = self.load_path.value
        if path is None or not Path(path).is_file():
            self.status.value = "Choose a model file to load."
            return
        try:
            self.load(path)
        except (RestoreInputError, ValueError, OSError) as err:
            self.status.value = f"Error: {error_text(err)}"


#: Legend words for the loss and metric keys the trainers report.
CURVE_NAMES = {
    "total": "total loss",
    "mae": "mean absolute error",
    "perceptual": "perceptual (VGG-19)",
    "level": "stripe-free level error",
    "l1": "L1 loss",
    "mse": "squared error",
    "val_psnr": "model output PSNR (dB)",
    "val_input_psnr": "striped input PSNR (dB)",
}


def duration_text(seconds: float) -> str:
    """A rounded duration for people: "40 s", "12 min", "2.5 h"."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class TrainingCurves:
    """Accumulates loss terms and validation metrics from Progress reports and plots them.

    Redraws at most every ``min_interval`` seconds: fast training steps need no more.
    """

    def __init__(
        self,
        loss_keys: tuple[str, ...],
        metric_keys: tuple[str, ...],
        min_interval: float = 1.0,
        height: float | None = None,
    ) -> None:
        self.loss_keys = loss_keys
        self.metric_keys = metric_keys
        # Without clean data (self-supervised denoising) there is no validation axis.
        titles = ["training loss", "validation"] if metric_keys else ["training loss"]
        # Height in inches: the axes and the legend below them.
        self.plot = LinePlot(titles, "step", height=height or 1.4 * len(titles) + 0.8)
        self.min_interval = min_interval
        #: (monotonic time, step) of this run's recent reports, for the time estimate.
        self._times: deque[tuple[float, int]] = deque(maxlen=50)
        self.losses: dict[str, tuple[list[int], list[float]]] = {}
        self.metrics: dict[str, tuple[list[int], list[float]]] = {}
        self._last_draw = 0.0

    def reset(self) -> None:
        self.losses.clear()
        self.metrics.clear()
        self._times.clear()
        self.plot.clear()

    def new_run(self) -> None:
        """Forget the step times of an earlier run (a pause must not slow the estimate)."""
        self._times.clear()

    def time_left(self, step: int, total: int) -> str:
        """``"about 12 min left"`` from the measured time of the recent steps ("" too early)."""
        if len(self._times) < 3 or total <= step:
            return ""
        (t0, s0), (t1, s1) = self._times[0], self._times[-1]
        if s1 <= s0:
            return ""
        return f"about {duration_text((t1 - t0) / (s1 - s0) * (total - step))} left"

    def add(self, p: Progress) -> None:
        """Record one report; redraw when due."""
        if p.losses:
            self._times.append((time.monotonic(), p.step))
        for key in self.loss_keys:
            if key in p.losses:
                xs, ys = self.losses.setdefault(key, ([], []))
                xs.append(p.step)
                ys.append(float(p.losses[key]))
        for key in self.metric_keys:
            if key in p.metrics:
                xs, ys = self.metrics.setdefault(key, ([], []))
                xs.append(p.step)
                ys.append(float(p.metrics[key]))
        if time.monotonic() - self._last_draw >= self.min_interval:
            self.redraw()

    def redraw(self) -> None:
        self._last_draw = time.monotonic()
        series = [
            {CURVE_NAMES.get(key, key): line for key, line in lines.items()}
            for lines in (self.losses, self.metrics)
        ][: self.plot.n_axes]
        self.plot.set_lines(series, log_y=[True, False][: len(series)])
