"""Progress reports of engine generators, and a driver that runs them to the end.

Every long computation in the engine is a generator that yields :class:`Progress` at least once
per step or tile and *returns* its result. The napari docks run it in a thread worker (a
``yield`` is where Stop/Cancel takes effect; the return value arrives by the ``returned``
signal); the CLI and the Python API drive it with :func:`run_to_end`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from napari_restore.errors import RestoreInputError

T = TypeVar("T")

ProgressGenerator = Generator["Progress", None, T]


@dataclass(frozen=True)
class Progress:
    """One progress report.

    Attributes
    ----------
    step, total : int
        Units done and units in all (``total`` 0 when unknown).
    stage : str
        What is running, e.g. ``"train"``, ``"validate"``, ``"tiles"``.
    losses : mapping of str to float
        Loss terms of the last training step (e.g. ``total``, ``mae``, ``perceptual``).
    metrics : mapping of str to float
        Validation metrics when they were just computed (e.g. ``psnr``, ``ssim``).
    preview : Any
        Optional small arrays to show, e.g. ``{"input": ..., "output": ...}``.
    message : str
        Free text for status lines.
    """

    step: int
    total: int = 0
    stage: str = ""
    losses: Mapping[str, float] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    preview: Any = None
    message: str = ""

    @property
    def fraction(self) -> float:
        """Share done in [0, 1] (0 when the total is unknown)."""
        return min(1.0, self.step / self.total) if self.total else 0.0


def run_to_end(
    gen: Generator[Progress, None, T],
    *,
    desc: str | None = None,
    progress_bar: bool = True,
    log_every: float = 0.0,
) -> T:
    """Drive an engine generator to completion and return its result.

    Parameters
    ----------
    gen : generator of Progress
        The computation.
    desc : str, optional
        Label of the progress bar.
    progress_bar : bool
        Show a tqdm bar on stderr (the CLI does; library calls may not want to).
    log_every : float
        Seconds between loss/metric lines written through the bar (0: only bar postfix).

    Returns
    -------
    The generator's return value.
    """
    bar = None
    last_log = 0.0
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if not progress_bar:
                continue
            if bar is None:
                from tqdm.auto import tqdm

                bar = tqdm(total=p.total or None, desc=desc or p.stage, unit=p.stage or "it")
            if p.total and bar.total != p.total:
                bar.total = p.total
            bar.n = p.step
            post = {k: f"{v:.4g}" for k, v in {**p.losses, **p.metrics}.items()}
            if post:
                bar.set_postfix(post, refresh=False)
            bar.refresh()
            if log_every and p.metrics and time.monotonic() - last_log >= log_every:
                last_log = time.monotonic()
                bar.write(f"step {p.step}: " + ", ".join(f"{k} {v}" for k, v in post.items()))
    finally:
        gen.close()
        if bar is not None:
            bar.close()


def nested_progress(
    inner: Generator[Progress, None, T],
    *,
    done: int,
    units: int,
    total: int,
    stage: str,
    message: str = "",
) -> ProgressGenerator[T]:
    """Run an inner generator to its end, reporting it as one part of a larger job.

    The inner reports are rescaled to the units ``done`` to ``done + units`` of ``total`` (e.g.
    the tiles of one group of planes among all tiles of a stack).

    Parameters
    ----------
    inner : generator of Progress
        The part (its own ``step``/``total`` are used only as a fraction).
    done, units, total : int
        Units finished before this part, units of this part, and units of the whole job.
    stage, message : str
        Fields of the reports yielded.

    Returns
    -------
    The inner generator's return value.
    """
    try:
        while True:
            try:
                p = next(inner)
            except StopIteration as stop:
                return stop.value
            yield Progress(done + round(p.fraction * units), total, stage=stage, message=message)
    finally:
        inner.close()


def each_or_error(
    parts: list[Generator[Any, None, T]],
    *,
    units: int,
    step_of: Any = lambda report: report.step,
    stage: str = "planes",
) -> ProgressGenerator[list[T | RestoreInputError]]:
    """Run generators one after another as one job; a part that refuses its input does not stop
    the others.

    Parameters
    ----------
    parts : list of generators
        Each reports its own progress (``step_of(report)`` units done) and returns a result.
    units : int
        Units of each part (e.g. planes per image); the job has ``units * len(parts)``.
    step_of : callable
        Units done, from one report of a part (default: its ``step``).
    stage : str
        Stage of the reports yielded.

    Returns
    -------
    list
        Per part, its result or the :class:`~napari_restore.errors.RestoreInputError` it raised.
    """
    total = units * len(parts)
    results: list[T | RestoreInputError] = []
    for i, gen in enumerate(parts):
        try:
            while True:
                yield Progress(i * units + step_of(next(gen)), total, stage=stage)
        except StopIteration as stop:
            results.append(stop.value)
        except RestoreInputError as err:
            results.append(err)
        finally:
            gen.close()
    return results
