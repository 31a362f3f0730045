"""Training docks' feedback: a time estimate from the measured step time."""

from __future__ import annotations

from napari_restore._widgets import _training
from napari_restore._widgets._training import TrainingCurves, duration_text
from napari_restore.core.progress import Progress


def test_time_left_comes_from_the_measured_step_time(qtbot, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_training.time, "monotonic", lambda: now[0])
    curves = TrainingCurves(("total",), (), min_interval=1e9)
    qtbot.addWidget(curves.plot)
    assert curves.time_left(0, 100) == ""  # nothing measured yet
    for step in range(1, 6):
        now[0] += 2.0  # each step takes 2 s
        curves.add(Progress(step, 100, losses={"total": 1.0}))
    assert curves.time_left(5, 100) == "about 3 min left"  # 95 steps at 2 s
    curves.new_run()  # a pause between runs does not count
    assert curves.time_left(5, 100) == ""


def test_duration_text():
    assert [duration_text(s) for s in (0.2, 40, 600, 9000)] == ["1 s", "40 s", "10 min", "2.5 h"]


def test_legend_in_words_one_colour_per_curve(qtbot):
    curves = TrainingCurves(("total", "mae"), ("val_psnr", "val_input_psnr"), min_interval=1e9)
    qtbot.addWidget(curves.plot)
    for step in (1, 2):
        curves.add(
            Progress(
                step,
                10,
                losses={"total": 1.0 / step, "mae": 0.5 / step},
                metrics={"val_psnr": 30.0 + step, "val_input_psnr": 27.0},
            )
        )
    curves.redraw()
    assert curves.plot.legend_labels() == [
        "total loss",
        "mean absolute error",
        "model output PSNR (dB)",
        "striped input PSNR (dB)",
    ]
    colours = curves.plot.colours()
    assert (
        len(set(colours.values())) == 4
    )  # the two axes do not reuse a colour: the legend is unambiguous
