"""Run records of the benchmark scripts: the command line, the load average, the result files."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that ran ``benchmarks/<script>`` with ``argv`` (or the process's arguments)."""
    return " ".join([f"python benchmarks/{script}", *(argv or sys.argv[1:])])


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to two decimals."""
    return [round(a, 2) for a in os.getloadavg()]


def save_results(out: Path, res: dict[str, Any], markdown: str) -> None:
    """Write ``res`` as ``results.json`` and ``markdown`` as ``results.md`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "results.md").write_text(markdown)
