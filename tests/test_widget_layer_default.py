"""Every dock's layer choice starts on the viewer's selected layer and follows the selection."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel

PLUGIN = "napari-restore"
SINGLE = {"Destripe": "image", "Denoise (SRDTrans)": "image", "Stripe Simulator": "image"}
MULTI = {"Train Destripe Model": "images", "Metrics": "images"}


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def open_dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def chosen(widget, attr):
    value = getattr(widget, attr).value
    return [layer.name for layer in value] if isinstance(value, list) else value.name


def test_stripe_pair_selected_striped_layer_is_the_default(viewer):
    viewer.open_sample(PLUGIN, "stripe_pair")
    striped = viewer.layers["tribolium (striped)"]
    truth = viewer.layers["tribolium (ground truth)"]
    viewer.layers.selection.active = striped
    dock = open_dock(viewer, "Destripe")
    assert dock.image.value is striped
    # It follows the selection while the user has not picked a layer in the dock.
    viewer.layers.selection.active = truth
    assert dock.image.value is truth


def test_noisy_timelapse_default_is_the_visible_noisy_layer_not_the_hidden_truth(viewer):
    viewer.open_sample(PLUGIN, "noisy_timelapse")
    truth = viewer.layers["time-lapse (truth)"]
    assert not truth.visible
    viewer.layers.selection.active = truth  # even a selected hidden layer is not the default
    dock = open_dock(viewer, "Denoise (SRDTrans)")
    assert dock.image.value is viewer.layers["time-lapse (noisy)"]


@pytest.mark.parametrize("name", [*SINGLE, *MULTI])
def test_every_dock_follows_the_selection_until_the_user_picks(viewer, qtbot, name):
    # The bottom layer is the Metrics dock's default ground truth (not offered to compare).
    viewer.add_image(np.zeros((32, 32), np.float32), name="bottom")
    first = viewer.add_image(np.zeros((32, 32), np.float32), name="first")
    second = viewer.add_image(np.ones((32, 32), np.float32), name="second")
    viewer.layers.selection.active = first
    attr = SINGLE.get(name) or MULTI[name]
    dock = open_dock(viewer, name)
    want = "first" if name in SINGLE else ["first"]
    assert chosen(dock, attr) == want
    viewer.layers.selection.active = second
    want = "second" if name in SINGLE else ["second"]
    assert chosen(dock, attr) == want
    third = viewer.add_image(np.ones((32, 32), np.float32), name="third")  # becomes active
    want = "third" if name in SINGLE else ["third"]
    assert chosen(dock, attr) == want
    # A pick of the user's own (a real click in the dock) is kept.
    combo = getattr(dock, attr)
    if name in SINGLE:
        index = combo.native.findText("first")
        combo.native.setCurrentIndex(index)
        combo.native.activated.emit(index)
    else:
        item = combo.native.findItems("first", Qt.MatchFlag.MatchExactly)[0]
        combo.native.clearSelection()
        item.setSelected(True)
        combo.native.itemPressed.emit(item)
    viewer.layers.selection.active = second
    assert chosen(dock, attr) == ("first" if name in SINGLE else ["first"])
    # ... until that layer goes away; then the dock follows the selection again.
    viewer.layers.remove(first)
    viewer.layers.selection.active = third
    assert chosen(dock, attr) == ("third" if name in SINGLE else ["third"])


@pytest.mark.parametrize("name", ["Destripe", "Denoise (SRDTrans)", "Train Destripe Model"])
def test_device_menu_is_labelled(viewer, name):
    dock = open_dock(viewer, name)
    row = dock.device.parent
    labels = [lbl.text() for lbl in dock.native.findChildren(QLabel)]
    assert row.native.isVisibleTo(dock.native)
    assert "device" in labels
    assert dock.device.value == "auto"


def test_destripe_direction_options_say_what_they_are(viewer):
    dock = open_dock(viewer, "Destripe")
    texts = [dock.direction.native.itemText(i) for i in range(dock.direction.native.count())]
    assert texts == ["horizontally (along x)", "vertically (along y)", "auto-detect per image"]
    assert dock.direction.value == "horizontal"
    dock.direction.value = "auto"
    assert dock.direction.native.currentText() == "auto-detect per image"


def test_a_dock_keeps_its_input_when_its_result_is_added(viewer, qtbot):
    clean = viewer.add_image(np.full((48, 64), 500, np.uint16), name="clean")
    dock = open_dock(viewer, "Stripe Simulator")
    dock.add_field.value = True
    dock.create_button.clicked.emit()
    qtbot.waitUntil(lambda: not dock.runner.running and len(viewer.layers) >= 3, timeout=30_000)
    assert viewer.layers.selection.active.name.startswith("stripe field clean")
    assert dock.image.value is clean


def test_hiding_the_chosen_layer_keeps_it(viewer):
    first = viewer.add_image(np.zeros((32, 32), np.float32), name="first")
    viewer.add_image(np.ones((32, 32), np.float32), name="second")
    viewer.layers.selection.active = first
    dock = open_dock(viewer, "Destripe")
    assert dock.image.value is first
    viewer.layers.selection.clear()
    first.visible = False  # e.g. to look at the layer beneath
    viewer.layers.move(0, 1)  # any later layer-list event
    assert dock.image.value is first
