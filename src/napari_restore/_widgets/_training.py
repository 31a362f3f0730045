"""Pieces shared by the docks that train models: device choice, live curves, previews.

A training dock owns a *trainer* (engine object with ``train()`` generator, ``save(path)``,
``step`` and ``history``); the worker runs ``trainer.train()``, and Stop closes that generator at
its next yield, so the trainer keeps its weights and can be saved or trained further.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from napari_restore._widgets._common import error_text
from napari_restore._widgets._plot import _BG, _FG, LinePlot
from napari_restore.core.progress import Progress
from napari_restore.errors import RestoreInputError


def device_chooser() -> tuple[ComboBox, Label, Container]:
    """A device menu (auto, cpu, cuda:N, mps) and a line saying what "auto" resolves to."""
    from napari_restore.core.device import available_devices, describe_device, resolve_device

    combo = ComboBox(label="device", choices=available_devices(), value="auto")
    using = Label(value="", label="")

    def update(*_: Any) -> None:
        try:
            using.value = f"uses {describe_device(resolve_device(combo.value))}"
        except ValueError as err:
            using.value = str(err)

    combo.changed.connect(update)
    update()
    row = Container(widgets=[combo, using], labels=False)
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
        return self.trainer.save(path)

    def _publish(self) -> None:
        """Offer the network (a snapshot) to the apply docks once the worker is done."""
        from napari_restore._widgets._session import SESSION_MODELS

        self.curves.redraw()
        if self.trainer is not None and self.trainer.step > 0 and self._life.alive:
            trainer = self.trainer
            SESSION_MODELS.publish(
                self.TASK, self._session_name(), trainer.model, trainer.metadata()
            )

    def _model_file_widgets(self) -> list[Any]:
        """The "save as" / "Save model" / "load" / "Load model (resume)" widgets, connected."""
        self.save_path = FileEdit(label="save as", mode="w", filter="*.safetensors")
        self.save_button = PushButton(text="Save model")
        self.load_path = FileEdit(label="load", mode="r", filter="*.safetensors")
        self.load_button = PushButton(text="Load model (resume)")
        self.save_button.changed.connect(self._save_clicked)
        self.load_button.changed.connect(self._load_clicked)
        return [self.save_path, self.save_button, self.load_path, self.load_button]

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


class ImagePreview(FigureCanvasQTAgg):
    """Small side-by-side greyscale panels (e.g. input / output / target) with one contrast."""

    def __init__(self, titles: tuple[str, ...], height: float = 1.9) -> None:
        fig = Figure(figsize=(4, height), facecolor=_BG, layout="constrained")
        super().__init__(fig)
        self.titles = titles
        self.axes = fig.subplots(1, len(titles), squeeze=False)[0]
        self.setMinimumHeight(int(height * 70))
        self._images: dict[str, Any] = {}
        for ax, title in zip(self.axes, titles, strict=True):
            ax.set_axis_off()
            ax.set_title(title, color=_FG, fontsize=8)

    def show_images(self, images: Mapping[str, np.ndarray]) -> None:
        """Show the arrays whose keys match the titles (contrast from the first one)."""
        first = next((np.asarray(images[t]) for t in self.titles if t in images), None)
        if first is None:
            return
        lo, hi = np.percentile(first, [0.5, 99.5])
        hi = hi if hi > lo else lo + 1
        for ax, title in zip(self.axes, self.titles, strict=True):
            if title not in images:
                continue
            img = np.asarray(images[title], dtype=np.float32)
            if title in self._images and self._images[title].get_array().shape == img.shape:
                self._images[title].set_data(img)
                self._images[title].set_clim(lo, hi)
            else:
                ax.clear()
                ax.set_axis_off()
                ax.set_title(title, color=_FG, fontsize=8)
                self._images[title] = ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        self.draw_idle()


class TrainingCurves:
    """Accumulates loss terms and validation metrics from Progress reports and plots them.

    Redraws at most every ``min_interval`` seconds so fast training steps do not flood the GUI
    thread with matplotlib work.
    """

    def __init__(
        self, loss_keys: tuple[str, ...], metric_keys: tuple[str, ...], min_interval: float = 0.5
    ) -> None:
        self.loss_keys = loss_keys
        self.metric_keys = metric_keys
        # Without clean data (self-supervised denoising) there is no validation axis.
        titles = ["training loss", "validation"] if metric_keys else ["training loss"]
        self.plot = LinePlot(titles, "step", height=1.5 * len(titles))
        self.min_interval = min_interval
        self.losses: dict[str, tuple[list[int], list[float]]] = {}
        self.metrics: dict[str, tuple[list[int], list[float]]] = {}
        self._last_draw = 0.0

    def reset(self) -> None:
        self.losses.clear()
        self.metrics.clear()
        self.plot.clear()

    def add(self, p: Progress) -> None:
        """Record one report; redraw when due."""
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
        series = [dict(self.losses), dict(self.metrics)][: len(self.plot.axes)]
        self.plot.set_lines(series, log_y=[True, False][: len(series)])
