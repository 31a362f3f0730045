"""Packaging: the manifest, sample data, and the engine's independence from napari/Qt."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_restore import _sample_data


def test_import_does_not_pull_gui_or_torch():
    code = (
        "import sys, napari_restore, napari_restore.simulate, napari_restore.metrics, "
        "napari_restore.io, napari_restore.cli;"
        "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'magicgui', 'torch') if m in sys.modules];"
        "print(bad); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_engine_imports_without_gui():
    code = (
        "import sys, napari_restore.engine.tiling, napari_restore.engine.model_files, "
        "napari_restore.core.device; "
        "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'magicgui') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_is_documented():
    import napari_restore

    for name in napari_restore.__all__:
        obj = getattr(napari_restore, name)
        if callable(obj):
            assert obj.__doc__ and len(obj.__doc__) > 40, name


def test_manifest_contributions_resolve():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-restore")
    assert {w.display_name for w in manifest.contributions.widgets} >= {
        "Stripe Simulator",
        "Metrics",
        "Denoise (SRDTrans)",
    }
    for command in manifest.contributions.commands:
        assert callable(_resolve(command)), command.id


def _resolve(command):
    module, _, attr = command.python_name.partition(":")
    return getattr(__import__(module, fromlist=[attr]), attr)


@pytest.mark.parametrize(
    "func",
    [
        _sample_data.maize_stem,
        _sample_data.nuclei,
        _sample_data.brain_cortex,
        _sample_data.tribolium_stack,
        _sample_data.smartspim_striped,
        _sample_data.cancer_cells_timelapse,
        _sample_data.stripe_pair,
        _sample_data.noisy_timelapse_pair,
    ],
)
def test_sample_data_is_real_and_offline(func):
    layers = func()
    for data, meta, kind in layers:
        assert kind == "image" and data.ndim in (2, 3) and data.size > 10_000
        assert meta["name"] and meta["metadata"]["attribution"]
        assert np.isfinite(data).all()
        assert np.ptp(data) > 0


def test_samples_are_copies():
    a = _sample_data.load_sample("nuclei")
    a[:] = 0
    assert _sample_data.load_sample("nuclei").max() > 0


def test_samples_open_in_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    for key in ("stripe_pair", "tribolium", "smartspim", "cancer_cells"):
        viewer.open_sample("napari-restore", key)
    assert len(viewer.layers) == 5
