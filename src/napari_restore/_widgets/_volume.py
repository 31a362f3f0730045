""" "Process whole volume to a file…": the Destripe and Denoise docks' blockwise run on a dask
cluster, for big layers read from a file.

The panel collects the output path and where to run (a local cluster of N workers, or a
scheduler address), starts the capability's blockwise generator in a thread worker (the same
function the command line runs), opens the output as a lazy layer as soon as the store exists
and refreshes it as blocks finish. Cancel closes the generator: pending blocks are cancelled and
the store stays resumable ("resume" finishes it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, Container, FileEdit, LineEdit, PushButton, SpinBox

from napari_restore._widgets._common import JobRunner, error_text, layer_kwargs_like, status_row
from napari_restore.core.progress import Progress
from napari_restore.errors import RestoreInputError

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

# start(input_path, output_path, model, client, resume) -> generator of block Progress
StartVolume = Callable[[Path, Path, Any, Any, bool], Any]


def layer_file(layer: Image) -> Path:
    """The file a layer was read from (its napari source), refusing layers without one."""
    path = getattr(getattr(layer, "source", None), "path", None)
    if not path:
        raise RestoreInputError(
            f"'{layer.name}' was not read from a file: processing a whole volume reads it from "
            "its file on the workers. Open the file in napari (or save the layer) first."
        )
    return Path(path)


class VolumePanel(Container):
    """Output file, cluster choice, the run button and its own progress / Cancel row.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the output layer goes.
    dock : Any
        The dock: ``image`` (layer combo box) and ``model_spec()``.
    start : callable
        ``start(input_path, output_path, model, client, resume)``: the blockwise generator.
    suffix : str
        Name of the output layer after the input's.
    """

    def __init__(self, viewer: napari.Viewer, dock: Any, start: StartVolume, suffix: str) -> None:
        self._viewer = viewer
        self._dock = dock
        self._start = start
        self._suffix = suffix
        self.output = FileEdit(label="volume output", mode="w", filter="*.ome.zarr")
        self.workers = SpinBox(
            label="local workers",
            value=2,
            min=0,
            max=256,
            tooltip="Worker processes of a local dask cluster (0: one per GPU, else per core).",
        )
        self.scheduler = LineEdit(
            label="scheduler",
            value="",
            tooltip="Address of a running dask scheduler (tcp://host:8786) or a scheduler "
            "file; empty: start a local cluster.",
        )
        self.resume = CheckBox(text="resume an interrupted output", value=False)
        self.run_button = PushButton(text="Process whole volume to a file…")
        self.progress, self.status, self.cancel_button, status = status_row()
        self.runner = JobRunner(self.progress, self.status, self.cancel_button)
        #: The lazy layer of the output being written (None before the store exists).
        self.layer: Image | None = None
        super().__init__(
            widgets=[
                self.output,
                self.workers,
                self.scheduler,
                self.resume,
                self.run_button,
                status,
            ],
            labels=True,
        )
        self.margins = (0, 0, 0, 0)
        self.run_button.changed.connect(self.run)

    def run(self, *_: Any) -> None:
        """Start the blockwise run of the chosen layer's file in the background."""
        from napari_restore.engine.blockwise import on_cluster

        if self.runner.running:
            return
        try:
            layer = self._dock.image.value
            if layer is None:
                raise RestoreInputError("Add or pick an image layer first.")
            inp = layer_file(layer)
            out = self.output.value
            if out is None or not str(out).strip() or str(out) == ".":
                raise RestoreInputError("Choose an output file (DIR.ome.zarr).")
            out = Path(out)
            model = self._dock.model_spec()
            # The dock may refuse settings that the blockwise path cannot honour.
            check = getattr(self._dock, "check_volume_settings", None)
            if check is not None:
                check()
        except RestoreInputError as err:
            self.status.value = error_text(err)
            return
        self.layer = None
        resume = bool(self.resume.value)
        scheduler = self.scheduler.value.strip() or None

        def start(client: Any) -> Any:
            return self._start(inp, out, model, client, resume)

        gen = on_cluster(start, workers=self.workers.value or None, scheduler=scheduler)
        self.runner.start(
            gen,
            on_done=lambda run: self._done(out, run),
            on_progress=lambda p: self._show(layer, out, p),
            # After Cancel the worker thread has left the generator suspended: closing it here
            # cancels the pending blocks and closes the cluster now, not at garbage collection.
            on_finish=gen.close,
            label="volume",
        )

    def _show(self, source: Image, out: Path, p: Progress) -> None:
        """Open the output lazily once the store exists; show the blocks that are done."""
        from napari_restore.engine.blockwise import BlockRecord

        if self.layer is None or self.layer not in self._viewer.layers:
            path = BlockRecord(out).array_path
            if path is None:
                return
            import zarr

            kwargs = layer_kwargs_like(source, contrast_limits=source.contrast_limits)
            self.layer = self._viewer.add_image(
                zarr.open_array(path, mode="r"),
                name=f"{source.name} {self._suffix} (file)",
                **kwargs,
            )
        else:
            self.layer.refresh()
        self.status.value = f"volume: {p.step}/{p.total} blocks"

    def _done(self, out: Path, run: Any) -> None:
        if self.layer is not None and self.layer in self._viewer.layers:
            self.layer.refresh()
        self.status.value = (
            f"wrote {out.name}: {run.computed} block(s) computed, {run.skipped} already done"
        )
