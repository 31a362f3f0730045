"""Shared test settings: headless Qt, small thread counts, and a fixed seed."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Fixtures that open a Qt window with an OpenGL canvas: they need a display on Linux.
_GUI_FIXTURES = {"make_napari_viewer", "make_napari_viewer_proxy", "qtbot"}
_NO_DISPLAY = (
    "no display: the napari GUI tests need an X display. Install Xvfb (Debian/Ubuntu: "
    "`sudo apt-get install xvfb`; pytest-xvfb, in the testing extra, then starts it for the "
    "tests) or run `bash .ci/run`, which sets up everything"
)


def _has_display() -> bool:
    """Whether Qt can open OpenGL windows here. pytest-xvfb has already set DISPLAY by the time
    tests are collected when it found the Xvfb binary; macOS and Windows need no X server."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def pytest_report_header(config: pytest.Config) -> str | None:
    return None if _has_display() else f"napari-restore: GUI tests skipped, {_NO_DISPLAY}."


def _skip_gui_tests(items: list[pytest.Item]) -> None:
    """Without a display every viewer test would fail inside vispy with dozens of OpenGL errors
    (and Qt can crash at exit): skip them with one actionable reason instead. On CI a missing
    display is a broken set-up, so it stops the run."""
    gui = [item for item in items if _GUI_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if not gui or _has_display():
        return
    if os.environ.get("CI"):
        pytest.exit(f"napari-restore: {_NO_DISPLAY}.", returncode=3)
    skip = pytest.mark.skip(reason=_NO_DISPLAY)
    for item in gui:
        item.add_marker(skip)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GUI tests where there is no display, and tests marked ``gpu`` without CUDA."""
    _skip_gui_tests(items)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op thread for every test: the tests check behaviour on tiny data, and on a
    shared 2-core machine OpenMP threads waiting for a busy core make small convolutions far
    slower (and timings noisy)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def interruptible() -> None:
    """``preexec_fn`` for CLI subprocesses that a test interrupts with SIGINT: a shell that
    starts a job in the background (``cmd &``, ``nohup``) makes it ignore SIGINT, and Python
    then never raises KeyboardInterrupt; the child gets the default disposition back."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
