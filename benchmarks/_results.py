"""Run records of the benchmark scripts: their arguments, the command line, the load average,
the result files."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The workspace's shared data folder, beside the repository (held-out crops, real images).
DATA_DIR = Path(__file__).parents[2] / "shared/data"


def results_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc``, with ``--data-dir`` (default
    :data:`DATA_DIR`) and the required ``--out`` folder of :func:`save_results`."""
    ap = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--out", type=Path, required=True)
    return ap


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that ran ``benchmarks/<script>`` with ``argv`` (or the process's arguments)."""
    return " ".join([f"python benchmarks/{script}", *(argv or sys.argv[1:])])


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to two decimals."""
    return [round(a, 2) for a in os.getloadavg()]


class RunClock:
    """When and under what load a benchmark ran: started when made, read by :meth:`record`."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.load_start = load_average()

    def record(self, script: str, argv: Sequence[str] | None) -> dict[str, Any]:
        """The run record of ``benchmarks/<script>``: command line, load averages at the start
        and now, and the seconds since the clock started."""
        return {
            "command": command_line(script, argv),
            "load_average_start": self.load_start,
            "load_average_end": load_average(),
            "seconds": time.perf_counter() - self.t0,
        }


def save_results(out: Path, res: dict[str, Any], markdown: str) -> None:
    """Write ``res`` as ``results.json`` and ``markdown`` as ``results.md`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "results.md").write_text(markdown)
