"""Docks open without heavy imports on the GUI thread, and fill in what needs torch later."""

from __future__ import annotations

import subprocess
import sys

import pytest

PLUGIN = "napari-restore"
DOCK_MODULES = ("destripe", "train_destripe", "denoise", "metrics_panel", "simulator")


def test_dock_modules_import_no_torch_matplotlib_or_scipy():
    """napari imports a dock's module on the GUI thread when the dock first opens: torch alone
    took 2-7 s there on a busy machine (issue 12)."""
    code = (
        "import sys\n"
        + "".join(f"import napari_restore._widgets.{m}\n" for m in DOCK_MODULES)
        + "print(sorted(m for m in ('torch', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "[]"


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def test_device_menu_and_model_line_fill_in_once_torch_is_imported(viewer, qtbot):
    from napari_restore.core.device import available_devices

    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Destripe")
    qtbot.waitUntil(lambda: dock.device_info.value.startswith("uses "), timeout=120_000)
    assert list(dock.device.choices) == available_devices()
    assert "ResCBAM" in dock.model_info.value or "steps" in dock.model_info.value
    assert "px" in dock.tile.tooltip  # the default tile, read from the engine


def test_plots_paint_their_lines_in_the_legend_colours(qtbot):
    import numpy as np

    from napari_restore._widgets._plot import _BG, LinePlot

    plot = LinePlot(["a", "b"], "x", height=2.0)
    qtbot.addWidget(plot)
    plot.set_lines([{"one": ([0, 1, 2], [1, 2, 3])}, {"two": ([0, 1, 2], [3, np.nan, 1])}])
    assert [list(y) for _, y in plot.series[0].values()] == [[1, 2, 3]]
    assert plot.colours() == {"one": "#1f77b4", "two": "#ff7f0e"}
    image = plot.render_image(400)
    assert (image.width(), image.height()) == (400, 160)
    painted = {image.pixelColor(x, y).name() for x in range(0, 400, 2) for y in range(0, 160, 2)}
    assert _BG in painted and "#1f77b4" in painted and "#ff7f0e" in painted
    # The legend sits below the axes: it covers no data point.
    rects, legend = plot.layout_rects()
    assert legend.height() > 0
    assert not any(legend.intersects(rect) for rect in rects)
    assert legend.top() >= rects[-1].bottom()


def test_tick_values_and_labels_are_round_and_plain():
    from napari_restore._widgets._plot import log_ticks, nice_ticks, tick_text

    assert list(nice_ticks(0.0, 10.0, 6)) == [0, 2, 4, 6, 8, 10]
    assert list(nice_ticks(0.0, 10.0, 5)) == [0, 5, 10]  # at most 5
    assert list(nice_ticks(27.3, 31.9, 4)) == [28, 29, 30, 31]
    assert list(log_ticks(0.004, 2.0, 6)) == [0.01, 0.1, 1.0]
    assert list(log_ticks(0.15, 0.6, 6)) == [0.2, 0.5]  # under a decade: 2 and 5
    assert [tick_text(v, 0.05) for v in (0.1, 0.15, 30.0)] == ["0.10", "0.15", "30.00"]
    assert [tick_text(v, v) for v in (0.01, 1.0, 1e-5)] == ["0.01", "1", "1e-05"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="dlopen preload is for POSIX")
def test_torch_libraries_load_before_the_import_and_the_import_reuses_them():
    """Python's import maps torch's ~0.3 s of shared libraries while holding the GIL, so the
    viewer froze even with the import in a background thread; the warm-up maps them first
    through a ctypes dlopen, which releases the GIL."""
    code = (
        "import sys\n"
        "from napari_restore._widgets._warmup import preload_shared_libraries\n"
        "loaded = preload_shared_libraries('torch')\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(len(loaded), 'torch' in sys.modules, all(p in maps for p in loaded))\n"
        "import torch\n"
        "print(float((torch.arange(4.0) * 2).sum()))\n"
        "print(preload_shared_libraries('torch'), preload_shared_libraries('numpy'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split("\n")[:3] == ["1 False True", "12.0", "[] []"]


def test_dock_jobs_run_at_a_lower_cpu_priority_than_the_viewer(qtbot):
    """A job's thread, and threads it starts (torch's intra-op pool), yield the cores to the
    viewer's thread on a small machine; the GUI thread itself keeps its priority."""
    import os
    import threading

    from magicgui.widgets import Label, ProgressBar, PushButton

    from napari_restore._widgets._common import JobRunner
    from napari_restore._widgets._priority import JOB_NICENESS
    from napari_restore.core.progress import Progress

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread niceness is Linux's")

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    gui_before = niceness()
    seen: dict[str, int] = {}

    def job():
        seen["job"] = niceness()
        child = threading.Thread(target=lambda: seen.setdefault("child", niceness()))
        child.start()
        child.join()
        yield Progress(1, 1, "done")
        return "result"

    results = []
    runner = JobRunner(ProgressBar(), Label(), PushButton())
    runner.start(job(), on_done=results.append)
    qtbot.waitUntil(lambda: results == ["result"], timeout=30_000)
    assert seen["job"] >= JOB_NICENESS
    assert seen["child"] >= JOB_NICENESS
    assert niceness() == gui_before

    # The other background thread too: the imports.
    from napari_restore._widgets import _warmup

    _warmup.preload(["json"])  # starts the import thread if no dock did yet
    seen_threads = {t.name: t.native_id for t in threading.enumerate()}
    imports = seen_threads["napari-restore-imports"]
    qtbot.waitUntil(lambda: os.getpriority(os.PRIO_PROCESS, imports) >= JOB_NICENESS)


def test_training_reports_reach_the_curves_at_once(qtbot):
    from napari_restore._widgets._training import TrainingCurves
    from napari_restore.core.progress import Progress

    curves = TrainingCurves(("total",), ("val_psnr",), min_interval=0.0)
    qtbot.addWidget(curves.plot)
    curves.add(Progress(1, 10, "train", losses={"total": 0.5}))
    curves.add(Progress(2, 10, "train", losses={"total": 0.4}, metrics={"val_psnr": 30.0}))
    losses, validation = curves.plot.series
    assert [list(y) for _, y in losses.values()] == [[0.5, 0.4]]
    assert [list(y) for _, y in validation.values()] == [[30.0]]
    assert curves.plot.log_y == [True, False]


@pytest.mark.parametrize("dock_name", ["Train Destripe Model", "Denoise (SRDTrans)"])
def test_status_messages_do_not_resize_the_dock_or_the_canvas(viewer, qtbot, dock_name):
    """A word-wrapped label still asks for a width that follows its text: each training
    step's message resized the dock, and napari redrew its whole canvas each time."""
    import numpy as np

    viewer.window._qt_window.resize(1600, 1000)
    viewer.add_image(np.zeros((64, 64), np.float32))
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, dock_name)
    qtbot.wait(300)
    canvas = viewer.window._qt_viewer.canvas
    sizes = {tuple(canvas.size)}
    for n in range(1, 30, 4):
        dock.status.value = f"step {10**n}/100000: loss {0.1**n:.4g}, " + "val. PSNR " * n
        qtbot.wait(50)
        sizes.add(tuple(canvas.size))
    dock.status.value = "Error: cannot write /data/" + "long_folder_name_" * 8 + "/model.json"
    qtbot.wait(50)
    sizes.add(tuple(canvas.size))
    assert len(sizes) == 1
    assert dock.status.native.height() > dock.status.native.fontMetrics().height() * 2  # wraps


def test_drawn_curves_do_not_set_the_width_the_plot_asks_for(qtbot):
    """A plot that asks for the width it was drawn at widens its dock at every redraw (a
    picture-sized plot did: the Train Destripe dock grew 2 px per redraw and napari redrew its
    shrinking canvas each time, the largest stalls while training ran)."""
    from napari_restore._widgets._training import TrainingCurves
    from napari_restore.core.progress import Progress

    curves = TrainingCurves(("total",), ("val_psnr",), min_interval=0.0)
    qtbot.addWidget(curves.plot)
    asked = curves.plot.sizeHint().width()
    for step in range(1, 4):
        curves.add(Progress(step, 10, "train", losses={"total": 1.0 / step}))
        curves.plot.render_image(600 + 50 * step)
        assert curves.plot.sizeHint().width() == asked
    assert asked <= 200


def test_image_previews_share_the_first_panels_contrast(qtbot):
    import numpy as np

    from napari_restore._widgets._plot import ImagePreview

    preview = ImagePreview(("input", "output"), height=1.5)
    qtbot.addWidget(preview)
    ramp = np.tile(np.linspace(0, 100, 64, dtype=np.float32), (32, 1))
    preview.show_images({"input": ramp, "output": ramp / 2, "unknown": ramp})
    assert set(preview.pictures) == {"input", "output"}
    shown, half = preview.pictures["input"], preview.pictures["output"]
    assert shown.dtype == np.uint8 and shown.shape == (32, 64)
    assert shown.min() == 0 and shown.max() == 255
    # One contrast for both panels: the halved output is darker, not stretched again.
    assert half.max() == pytest.approx(128, abs=2)
    image = preview.render_image(300)
    left = image.pixelColor(10, 45).name(), image.pixelColor(140, 45).name()
    assert left[0] != left[1]  # the ramp is painted: dark on its left, bright on its right


@pytest.mark.parametrize("dock_name", ["Denoise (SRDTrans)", "Train Destripe Model", "Metrics"])
def test_docks_scroll_instead_of_making_the_window_grow(viewer, dock_name):
    """A dock that needs more height than the window has made napari grow its window, and
    the canvas was resized and redrawn mid-job (the Denoise dock beside another dock)."""
    from qtpy.QtWidgets import QScrollArea

    from napari_restore._widgets._common import MIN_DOCK_HEIGHT

    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, dock_name)
    scroll = dock.native
    assert isinstance(scroll, QScrollArea) and scroll.widget() is dock.rows
    assert scroll.minimumSizeHint().height() <= MIN_DOCK_HEIGHT  # the window need not grow
    assert dock.rows.minimumSizeHint().height() > 300  # ... for all these rows
    # It still asks for all of its rows (Qt caps a scroll area's hint at 24 lines), so napari
    # shares a side's height between docks by what they hold.
    assert scroll.sizeHint().height() >= dock.rows.sizeHint().height()
    layout = dock.rows.layout()
    assert layout.itemAt(layout.count() - 1).spacerItem() is not None  # spare room below
