"""The house rules, checked on the source: imports only go down the layers, no package reaches
into another's private modules, and nothing outside the docks needs Qt or napari."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import napari_restore

ROOT = Path(napari_restore.__file__).parent
PACKAGE = "napari_restore"

# Lowest first; a module may import from its own layer or the ones below it (except the two
# capability packages, which never import each other).
LAYERS: dict[str, int] = {
    "_version": 0,
    "errors": 0,
    "core": 0,
    "simulate": 1,
    "models": 1,
    "metrics": 1,
    "stripe_meter": 1,
    "io": 1,
    "io_folders": 1,
    "_sample_data": 1,
    "engine": 2,
    "destripe": 3,
    "denoise": 3,
    "cli": 4,
    "_widgets": 4,
    "_reader": 4,
    "__init__": 4,
}
CAPABILITIES = {"destripe", "denoise"}
NO_GUI = (
    "core",
    "simulate",
    "models",
    "destripe",
    "denoise",
    "engine",
    "metrics",
    "io",
    "io_folders",
    "_reader",
    "cli",
)
GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file, at any depth (lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # "from napari_restore.x import y" may import the submodule x.y
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def top(module: str) -> str | None:
    """The first-level part of a napari_restore module name ("core", "cli", ...)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else "__init__"


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = {top(module_name(p)) for p in SOURCES} - set(LAYERS)
    assert not missing, f"add these to LAYERS (and docs/architecture.md): {missing}"


def test_imports_only_go_down_the_layers():
    bad = []
    for path in SOURCES:
        here = top(module_name(path))
        for line, target in imports(path):
            there = top(target)
            if there is None or there not in LAYERS or there == here:
                continue
            upward = LAYERS[there] > LAYERS[here]
            sideways = here in CAPABILITIES and there in CAPABILITIES
            if upward or sideways:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {target} ({there})")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(set(bad)))


def test_no_package_imports_another_packages_private_modules():
    bad = []
    for path in SOURCES:
        importer = module_name(path)
        for line, target in imports(path):
            parts = target.split(".")
            if parts[0] != PACKAGE:
                continue
            for i, part in enumerate(parts[1:], start=1):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])  # the package the private module belongs to
                    if not (importer == owner or importer.startswith(owner + ".")):
                        bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
                    break
    assert not bad, "\n".join(sorted(set(bad)))


@pytest.mark.parametrize("package", NO_GUI)
def test_no_gui_imports_outside_the_docks(package):
    bad = []
    for path in SOURCES:
        if top(module_name(path)) != package:
            continue
        for line, target in imports(path):
            if target.split(".")[0] in GUI_MODULES:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_importing_the_engine_loads_no_gui():
    modules = sorted(
        module_name(p) for p in SOURCES if top(module_name(p)) in NO_GUI and p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in {GUI_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
