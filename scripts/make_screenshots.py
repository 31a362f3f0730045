"""Screenshots of the docks for docs/ (run under a display, e.g. ``xvfb-run -a``).

Usage: ``xvfb-run -a python scripts/make_screenshots.py [--data DIR] [names...]`` from the
repository root; PNGs go to ``docs/images``. Each scene loads data, opens a dock through the
plugin manifest, runs it as a user would, waits for the worker, and saves
``viewer.screenshot(canvas_only=False)``. Scenes on real striped or noisy data read the shared
data directory (``--data``, default ``../shared/data``); those images are not shipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication
from skimage.io import imsave

from napari_restore.io import read_image

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
PLUGIN = "napari-restore"
DATA = Path("../shared/data")


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
    wait(lambda: True)
    OUT.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    imsave(OUT / f"{name}.png", shot, check_contrast=False)
    print("saved", OUT / f"{name}.png", shot.shape, flush=True)


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


def side_by_side(viewer: napari.Viewer, name: str) -> None:
    """Grid view of the visible layers, fitted, then saved."""
    viewer.grid.enabled = True
    wait(lambda: True)
    viewer.reset_view()
    save(viewer, name)


def destripe_real(viewer: napari.Viewer, file: str, name: str, crop: tuple = ()) -> None:
    data = read_image(DATA / file)
    if crop:
        data = data[crop]
    layer = viewer.add_image(data, name=file.split(".")[0])
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Destripe")
    w.image.value = layer
    w.run_button.clicked.emit()
    wait(lambda: len(viewer.layers) == 2 and not w.runner.running, timeout=1800)
    viewer.layers[-1].contrast_limits = layer.contrast_limits
    side_by_side(viewer, name)


def destripe_spim(viewer: napari.Viewer) -> None:
    destripe_real(viewer, "real_striped_spim_tosi.tif", "destripe_real_spim")


def destripe_smartspim(viewer: napari.Viewer) -> None:
    destripe_real(viewer, "real_striped_smartspim_aind.png", "destripe_real_smartspim")


def destripe_adapt(viewer: napari.Viewer) -> None:
    """Unseen sparse nuclei with Gaussian stripes: the built-in model as it is, then adapted."""
    from napari_restore.simulate import simulate_stripes

    clean = read_image(DATA / "widefield_fly_nuclei_cellprofiler.tif")[:512, :512]
    striped = simulate_stripes(clean, kind="gaussian", seed=5).image
    layer = viewer.add_image(striped, name="fly nuclei, striped")
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Destripe")
    w.image.value = layer
    w.run_button.clicked.emit()
    wait(lambda: len(viewer.layers) == 2 and not w.runner.running, timeout=1800)
    viewer.layers[-1].name = "built-in model"
    w.image.value = layer
    w.adapt.value = True
    w.run_button.clicked.emit()
    wait(lambda: len(viewer.layers) == 3 and not w.runner.running, timeout=1800)
    viewer.layers[-1].name = f"adapted to the image ({w.adapt_steps.value} steps)"
    viewer.add_image(clean, name="clean (truth)")
    # Grid cells follow the order the layers were added in (the layer list's bottom first).
    for lay in viewer.layers:
        lay.contrast_limits = (0, 120)  # stretched, so that the stripes and the lift show
    viewer.layers.selection.active = layer
    w.image.value = layer
    viewer.text_overlay.visible = True
    viewer.text_overlay.text = (
        "striped (Gaussian) | built-in model\nadapted to the image | clean (truth)"
    )
    side_by_side(viewer, "destripe_adapt_fly")


def train_destripe(viewer: napari.Viewer) -> None:
    """The dock while it trains (curves, a validation, the preview), then Stop."""
    [layer] = viewer.open_sample(PLUGIN, "maize")
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Train Destripe Model")
    w.images.value = [layer]
    w.steps.value = 60
    w.patch_size.value = 64
    w.batch_size.value = 4
    w.train_button.clicked.emit()
    try:
        wait(lambda: len(w.curves.losses.get("total", ([], []))[0]) >= 4 and w.curves.metrics, 900)
    finally:
        print("train destripe:", w.status.value, flush=True)
    w.curves.redraw()
    save(viewer, "train_destripe_dock")
    w.stop_button.clicked.emit()
    wait(lambda: not w.runner.running, 300)


def denoise_dock(viewer: napari.Viewer, data, name: str, shot: str, frame: int) -> None:
    """Train & apply with the dock's defaults (on a CPU: the pretrained start, 3 minutes)."""
    layer = viewer.add_image(data, name=name)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise (SRDTrans)")
    w.image.value = layer
    w.train_apply_button.clicked.emit()
    wait(lambda: len(viewer.layers) == 2 and not w.runner.running, timeout=1800)
    viewer.layers[-1].contrast_limits = layer.contrast_limits
    viewer.dims.set_current_step(0, frame)
    print("status:", w.status.value, "| advice:", w.advice.value or "(none)")
    import numpy as np

    from napari_restore.denoise.infer import contrast_fit

    noisy, out = np.asarray(layer.data, np.float32), np.asarray(viewer.layers[-1].data, np.float32)
    a, b = contrast_fit(noisy, out, max_frames=noisy.shape[0])
    noise = [float(np.diff(x, axis=0).std() / np.sqrt(2)) for x in (noisy, out)]
    print(
        f"input = {a:.3f} * output + {b:.1f}; frame-to-frame noise {noise[0]:.1f} -> {noise[1]:.1f}"
    )
    side_by_side(viewer, shot)


def denoise_cancer(viewer: napari.Viewer) -> None:
    [layer] = viewer.open_sample(PLUGIN, "cancer_cells")
    data = layer.data
    viewer.layers.clear()
    denoise_dock(viewer, data, "cancer cells", "denoise_real_cancer_cells", 24)


def stripe_meter(viewer: napari.Viewer) -> None:
    """The bundled SmartSPIM sample through Destripe (with its meter line), then the Metrics
    panel without a ground truth comparing the input with the result."""
    [layer] = viewer.open_sample(PLUGIN, "smartspim")
    _, d = viewer.window.add_plugin_dock_widget(PLUGIN, "Destripe")
    d.image.value = layer
    d.run_button.clicked.emit()
    wait(lambda: len(viewer.layers) == 2 and not d.runner.running, timeout=600)
    result = viewer.layers[-1]
    result.contrast_limits = layer.contrast_limits
    _, m = viewer.window.add_plugin_dock_widget(PLUGIN, "Metrics")
    m.ground_truth.value = None
    m.domain.value = "log"  # the fine lines are shadows, as the Destripe dock measures them
    m.images.value = [layer, result]
    m.compute_button.clicked.emit()
    wait(lambda: bool(m.results) and not m.runner.running)
    side_by_side(viewer, "metrics_noref_smartspim")


SCENES: dict[str, Callable[[napari.Viewer], None]] = {
    "simulator": simulator,
    "metrics": metrics,
    "stripe_meter": stripe_meter,
    "destripe_spim": destripe_spim,
    "destripe_smartspim": destripe_smartspim,
    "destripe_adapt": destripe_adapt,
    "train_destripe": train_destripe,
    "denoise_cancer": denoise_cancer,
}


def main(argv: list[str]) -> None:
    global DATA
    if argv[:1] == ["--data"]:
        DATA, argv = Path(argv[1]), argv[2:]
    for name in argv or list(SCENES):
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1600, 1000)
        try:
            SCENES[name](viewer)
        finally:
            viewer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
