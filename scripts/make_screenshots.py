"""Screenshots of the docks for docs/ (run under a display, e.g. ``xvfb-run -a``).

Usage: ``xvfb-run -a python scripts/make_screenshots.py [names...]`` from the repository root;
PNGs go to ``docs/images``. Each scene loads data, opens a dock through the plugin manifest,
runs it as a user would, waits for the worker, and saves ``viewer.screenshot(canvas_only=False)``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication
from skimage.io import imsave

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
PLUGIN = "napari-restore"


def wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Process Qt events until ``condition()`` holds."""
    import time

    end = time.monotonic() + timeout
    while not condition():
        QApplication.processEvents()
        if time.monotonic() > end:
            raise TimeoutError("scene did not settle")
        time.sleep(0.02)
    for _ in range(20):
        QApplication.processEvents()


def save(viewer: napari.Viewer, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    imsave(OUT / f"{name}.png", shot, check_contrast=False)
    print("saved", OUT / f"{name}.png", shot.shape)


def simulator(viewer: napari.Viewer) -> None:
    [layer] = viewer.open_sample(PLUGIN, "maize")
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Stripe Simulator")
    w.kind.value = "tilted"
    w.seed.value = 3
    wait(lambda: any(lyr.name.endswith("[stripe preview]") for lyr in viewer.layers))
    save(viewer, "stripe_simulator_preview")
    w.add_field.value = True
    w.create_button.clicked.emit()
    wait(lambda: not w.runner.running and len(viewer.layers) == 3)
    layer.visible = False
    field = viewer.layers[-1]
    field.visible, field.blending = True, "translucent"
    viewer.grid.enabled = True
    wait(lambda: True)  # let the canvas take its grid layout before fitting the view
    viewer.reset_view()
    save(viewer, "stripe_simulator_created")


def metrics(viewer: napari.Viewer) -> None:
    gt, striped = viewer.open_sample(PLUGIN, "stripe_pair")
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Metrics")
    w.ground_truth.value = gt
    w.images.value = [striped]
    w.compute_button.clicked.emit()
    wait(lambda: bool(w.results) and not w.runner.running)
    viewer.dims.set_current_step(0, 12)
    save(viewer, "metrics_panel")


SCENES: dict[str, Callable[[napari.Viewer], None]] = {
    "simulator": simulator,
    "metrics": metrics,
}


def main(names: list[str]) -> None:
    for name in names or list(SCENES):
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1500, 950)
        try:
            SCENES[name](viewer)
        finally:
            viewer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
