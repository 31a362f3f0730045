"""The built-in destriper's training corpus never contains a validation image.

``scripts/train_destripe_model.py --corpus`` trains on ``train/`` minus whole validation
sources; ``benchmarks/bench_destripe.py --set heldout`` validates on crops of those sources.
The two lists live in different files, so this checks that they agree.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load(ROOT / "scripts" / "train_destripe_model.py", "train_destripe_model_split")


@pytest.fixture(scope="module")
def heldout():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return _load(ROOT / "benchmarks" / "_destripe_data.py", "_destripe_data_split").HELDOUT_SET
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_corpus_leaves_out_every_validation_image(script, heldout, tmp_path):
    train = tmp_path / "train"
    train.mkdir()
    validation = [Path(f).name for f, _ in heldout if f.startswith("train/")]
    others = ["fluo_nuclei_bioimageio.tif", "lsfm_root_nuclei_p3dunet.tif"]
    for name in [*validation, *others]:
        (train / name).write_bytes(b"")
    corpus = script.corpus_files(tmp_path)
    assert sorted(corpus) == sorted(f"train/{n}" for n in others)
    assert len(validation) >= 8  # the minimum: 8 images from 5 sources
    sources = {n.rsplit("_", 1)[-1] for n in validation}
    assert len(sources) >= 5
    # The image-level hold-outs of the first model stay out of every option's training files.
    for options in ({}, {"extra": True}, {"extra": True, "corpus": True}):
        files = script.training_files(tmp_path, **options)
        assert not set(files) & set(script.HELD_OUT_FILES)
        assert not any(Path(f).name in validation for f in files)
