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


def test_plots_are_drawn_off_the_gui_thread_and_shown(viewer, qtbot):
    from napari_restore._widgets._plot import LinePlot

    plot = LinePlot(["a", "b"], "x", height=2.0)
    qtbot.addWidget(plot)
    plot.show()
    plot.set_lines([{"one": ([0, 1, 2], [1, 2, 3])}, {"one": ([0, 1, 2], [3, 2, 1])}])
    shown = plot._label.pixmap
    qtbot.waitUntil(lambda: shown() is not None and not shown().isNull(), timeout=60_000)
    [line] = plot.axes[0].get_lines()
    assert list(line.get_ydata()) == [1, 2, 3]
    assert plot._label.pixmap().height() >= 150


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

    # The other background threads too: the imports and the plot drawing.
    from napari_restore._widgets import _plot, _warmup

    _warmup.preload(["json"])  # starts the import thread if no dock did yet
    seen_threads = {t.name: t.native_id for t in threading.enumerate()}
    plot_thread = _plot._plot_thread().submit(niceness).result(timeout=30)
    assert plot_thread >= JOB_NICENESS
    imports = seen_threads["napari-restore-imports"]
    qtbot.waitUntil(lambda: os.getpriority(os.PRIO_PROCESS, imports) >= JOB_NICENESS)


def test_training_curves_hand_over_without_waiting_for_a_drawing_in_progress(qtbot):
    """The plot thread may be busy for up to a second on a loaded machine; a new report must
    not make the viewer's thread wait for it (it did, through ``plot.axes``: 0.8 s stalls)."""
    import threading

    from napari_restore._widgets._training import TrainingCurves
    from napari_restore.core.progress import Progress

    curves = TrainingCurves(("total",), ("val_psnr",), min_interval=0.0)
    qtbot.addWidget(curves.plot)
    release = threading.Event()
    curves.plot._request(lambda fig: release.wait(60))  # a drawing that lasts until released
    threading.Timer(10, release.set).start()  # a waiting GUI thread is freed, and fails below
    try:
        curves.add(Progress(1, 10, "train", losses={"total": 0.5}))
        curves.add(Progress(2, 10, "train", losses={"total": 0.4}, metrics={"val_psnr": 30.0}))
        handed_over_while_busy = not release.is_set()
    finally:
        release.set()
    assert handed_over_while_busy
    curves.plot.wait()
    loss_axes, val_axes = curves.plot.axes
    assert list(loss_axes.get_lines()[0].get_ydata()) == [0.5, 0.4]
    assert list(val_axes.get_lines()[0].get_ydata()) == [30.0]


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
    """The curves are drawn at the plot's width; a picture label sized by its pixmap made the
    plot ask for that width plus its frame, so in a shown window the Train Destripe dock grew
    by 2 px at every redraw and napari redrew its shrinking canvas each time (measured: the
    canvas 670 -> 660 px wide over 6 redraws; the largest stalls while training ran)."""
    from napari_restore._widgets._training import TrainingCurves
    from napari_restore.core.progress import Progress

    curves = TrainingCurves(("total",), ("val_psnr",), min_interval=0.0)
    qtbot.addWidget(curves.plot)
    asked = curves.plot.sizeHint().width()
    for step in range(1, 4):
        curves.add(Progress(step, 10, "train", losses={"total": 1.0 / step}))
        curves.redraw()
        curves.plot.wait()
        qtbot.waitUntil(lambda: curves.plot._drawn_width > 0)  # the picture is shown
        assert curves.plot.sizeHint().width() == asked
    assert curves.plot._drawn_width >= 200  # drawn at a real width all the same
