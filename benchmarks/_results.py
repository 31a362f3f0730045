"""Run records of the benchmark scripts: their arguments, the command line, the load average,
the result files."""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def save_results(out: Path, res: dict[str, Any], markdown: str) -> None:
    """Write ``res`` as ``results.json`` and ``markdown`` as ``results.md`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "results.md").write_text(markdown)
