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
