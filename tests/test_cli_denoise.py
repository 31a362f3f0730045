"""``napari-restore denoise`` end to end on tiny TIFF files, and its error cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_restore.cli import main
from napari_restore.denoise.infer import denoise, load_denoise_model
from napari_restore.simulate.timelapse import simulate_timelapse


@pytest.fixture
def noisy_tif(tmp_path: Path) -> Path:
    stack = simulate_timelapse((16, 32, 32), photons=3.0, seed=2, output_dtype="uint16").noisy
    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, stack)
    return path


def cli(*args: object) -> int:
    return main(["denoise", *(str(a) for a in args)])


# Training mechanics are tested on a network from scratch (its patch_t is free); the start
# from the pretrained network has its own test below.
TRAIN = [
    "--train-steps",
    "2",
    "--patch-t",
    "16",
    "--patch-xy",
    "16",
    "--from-scratch",
    "--device",
    "cpu",
    "-q",
]


def test_train_save_and_denoise_with_the_saved_model(noisy_tif: Path, tmp_path: Path) -> None:
    out1, out2, model = tmp_path / "d1.tif", tmp_path / "d2.tif", tmp_path / "model"
    rc = cli(noisy_tif, "-o", out1, *TRAIN, "--save-model", model)
    assert rc == 0
    noisy = tifffile.imread(noisy_tif)
    first = tifffile.imread(out1)
    assert first.shape == noisy.shape and first.dtype == np.uint16
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["task"] == "denoise" and meta["steps"] == 2
    assert meta["architecture"]["kwargs"]["patch_t"] == 16
    assert meta["data"]["source"] == "noisy.tif"

    weights = f"{model}.safetensors"
    rc = cli(
        noisy_tif, "-o", out2, "--model", weights, "--device", "cpu", "--dtype", "float32", "-q"
    )
    assert rc == 0
    second = tifffile.imread(out2)
    assert second.dtype == np.float32
    # The saved model reproduces the trained one: same result up to the uint16 rounding.
    np.testing.assert_array_equal(np.clip(np.rint(second), 0, 65535).astype(np.uint16), first)
    expected = denoise(
        noisy, load_denoise_model(model, "cpu"), device="cpu", output_dtype="float32"
    )
    np.testing.assert_allclose(second, expected, rtol=1e-6)

    # --flips: the number of mirrored passes averaged ("auto" gave 4 above: a small stack).
    out3 = tmp_path / "d3.tif"
    rc = cli(noisy_tif, "-o", out3, "--model", weights, "--device", "cpu", "--dtype", "float32",
             "--flips", "1", "-q")  # fmt: skip
    assert rc == 0
    single = denoise(
        noisy, load_denoise_model(model, "cpu"), device="cpu", output_dtype="float32", flips=1
    )
    np.testing.assert_allclose(tifffile.imread(out3), single, rtol=1e-6)
    assert not np.allclose(single, second, rtol=1e-6)
    with pytest.raises(SystemExit):
        cli(noisy_tif, "-o", tmp_path / "d4.tif", "--model", weights, "--flips", "3")


def test_progress_bars_and_summary_are_printed(noisy_tif: Path, tmp_path: Path, capsys) -> None:
    args = [a for a in TRAIN if a != "-q"]
    assert cli(noisy_tif, "-o", tmp_path / "d.tif", *args) == 0
    captured = capsys.readouterr()
    assert "trained 2 steps" in captured.out and "wrote" in captured.out
    assert "train" in captured.err and "denoise" in captured.err  # tqdm bars


def run_error(args: list[object], capsys) -> str:
    assert cli(*args) == 2
    return capsys.readouterr().err


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_errors_exit_2_and_leave_no_output(noisy_tif: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "out.tif")
    keep = {"noisy.tif"}
    err = run_error([str(tmp_path / "missing.tif"), "-o", out, *TRAIN], capsys)
    assert "not found" in err
    err = run_error([str(noisy_tif), "-o", str(noisy_tif), *TRAIN], capsys)
    assert "is the input file" in err
    err = run_error([str(noisy_tif), "-o", out, *TRAIN, "--stack-axis", "1"], capsys)
    assert "stack_axis=1" in err
    err = run_error([str(noisy_tif), "-o", out, *TRAIN, "--patch-t", "24"], capsys)
    assert "multiple of 16" in err
    err = run_error([noisy_tif, "-o", out, "--model", tmp_path / "none.safetensors"], capsys)
    assert "Model file not found" in err
    err = run_error([noisy_tif, "-o", out, "--model", noisy_tif, "--save-model", "m"], capsys)
    assert "--save-model needs training" in err
    err = run_error([str(noisy_tif), "-o", out, *TRAIN, "--device", "cuda:7"], capsys)
    assert "cuda:7" in err
    assert leftovers(tmp_path, keep) == []


def test_model_method_is_required_and_exclusive(noisy_tif: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out.tif")
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(noisy_tif), "-o", out])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(noisy_tif), "-o", out, "--model", "m", "--train-minutes", "1"])
    assert exc.value.code == 2
    assert not Path(out).exists()


def test_existing_outputs_need_overwrite(noisy_tif: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep me")
    err = run_error([str(noisy_tif), "-o", str(out), *TRAIN], capsys)
    assert "--overwrite" in err and out.read_bytes() == b"keep me"
    (tmp_path / "m.safetensors").write_bytes(b"old")
    new = tmp_path / "new.tif"
    err = run_error([noisy_tif, "-o", new, *TRAIN, "--save-model", tmp_path / "m"], capsys)
    assert "--overwrite" in err and not (tmp_path / "new.tif").exists()
    assert cli(noisy_tif, "-o", out, *TRAIN, "--overwrite") == 0
    assert tifffile.imread(out).shape == (16, 32, 32)


def test_four_d_files_train_a_model_per_channel(tmp_path: Path, capsys) -> None:
    # (C, T, Y, X): two channels of different brightness, the stack axis is 1.
    ct = np.stack(
        [
            simulate_timelapse((16, 20, 20), photons=p, seed=s, output_dtype="uint16").noisy
            for s, p in ((1, 2.0), (2, 8.0))
        ]
    )
    path = tmp_path / "ct.tif"
    tifffile.imwrite(path, ct)
    out, model = tmp_path / "o.tif", tmp_path / "m"
    f32 = ("--dtype", "float32")
    assert cli(path, "-o", out, *TRAIN, *f32, "--stack-axis", 1, "--save-model", model) == 0
    denoised = tifffile.imread(out)
    assert denoised.shape == ct.shape and denoised.dtype == np.float32
    metas = [json.loads((tmp_path / f"m_{c}.json").read_text()) for c in (0, 1)]
    assert [m["data"]["source"] for m in metas] == ["ct.tif [axis 0 = 0]", "ct.tif [axis 0 = 1]"]
    assert [m["data"]["shape"] for m in metas] == [[16, 20, 20]] * 2
    # Each channel was trained on its own data and denoised with its own model.
    assert metas[0]["data"]["mean"] == pytest.approx(float(ct[0].mean()))
    assert metas[1]["data"]["mean"] == pytest.approx(float(ct[1].mean()))
    for c in (0, 1):
        net = load_denoise_model(tmp_path / f"m_{c}", "cpu")
        expected = denoise(ct[c], net, device="cpu", output_dtype="float32")
        np.testing.assert_allclose(denoised[c], expected, rtol=1e-6)

    # One saved model applies to every channel.
    both = tmp_path / "both.tif"
    args = ("--stack-axis", 1, "-q", "--device", "cpu", *f32)
    assert cli(path, "-o", both, "--model", tmp_path / "m_0.safetensors", *args) == 0
    one_model = tifffile.imread(both)
    np.testing.assert_allclose(one_model[0], denoised[0], rtol=1e-6)
    assert np.abs(one_model[1] - denoised[1]).max() > 1e-3

    # Saved models are checked up front: an existing one stops the run before training.
    err = run_error(
        [
            str(path),
            "-o",
            str(tmp_path / "x.tif"),
            *TRAIN,
            "--stack-axis",
            "1",
            "--save-model",
            str(model),
        ],
        capsys,
    )
    assert "--overwrite" in err and not (tmp_path / "x.tif").exists()


def test_a_model_per_stack_must_match_the_stacks(tmp_path: Path) -> None:
    from napari_restore.denoise.infer import denoise_file
    from napari_restore.errors import RestoreInputError
    from napari_restore.models.srdtrans import SRDTrans

    path = tmp_path / "ct.tif"
    tifffile.imwrite(path, np.zeros((2, 16, 8, 8), np.uint16))
    net = SRDTrans(patch_t=16, channels=(2, 4, 4, 8), embed_dim=16, heads=2)
    with pytest.raises(RestoreInputError, match="3 models for 2 stacks"):
        denoise_file(path, tmp_path / "o.tif", [net] * 3, stack_axis=1, device="cpu")
    assert not (tmp_path / "o.tif").exists()


def test_ctrl_c_ends_training_early_and_keeps_going(
    noisy_tif: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The user presses Ctrl-C during training: the steps done are kept, saved and applied."""
    from napari_restore.denoise.train import DenoiseTrainer

    real_step = DenoiseTrainer._train_step

    def step_then_interrupt(self, step):
        if self.step >= 2:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        return real_step(self, step)

    monkeypatch.setattr(DenoiseTrainer, "_train_step", step_then_interrupt)
    out, model = tmp_path / "d.tif", tmp_path / "m"
    args = [a for a in TRAIN if a not in ("-q",)]
    args[args.index("--train-steps") + 1] = "50"
    assert cli(noisy_tif, "-o", out, *args, "--lr", "5e-4", "--save-model", model) == 0
    assert "stopped by Ctrl-C after 2 steps" in capsys.readouterr().out
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["steps"] == 2 and meta["training"]["config"]["learning_rate"] == 5e-4
    assert tifffile.imread(out).shape == tifffile.imread(noisy_tif).shape


def test_a_short_training_warns_and_says_what_to_do(
    noisy_tif: Path, tmp_path: Path, capsys
) -> None:
    """Two steps from scratch cannot give a usable network: stderr says so (even with -q),
    and the result is still written."""
    out = tmp_path / "d.tif"
    assert cli(noisy_tif, "-o", out, *TRAIN) == 0
    err = capsys.readouterr().err
    assert "warning: Only 2 training steps from scratch" in err
    assert "Train longer" in err
    assert out.exists()


def test_training_starts_from_the_pretrained_network_by_default_on_a_cpu(
    noisy_tif: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from napari_restore.denoise import config as denoise_train
    from napari_restore.engine.model_files import save_model_file
    from napari_restore.models.srdtrans import SRDTrans

    net = SRDTrans(patch_t=16, channels=(2, 4, 4, 8), embed_dim=16, heads=2)
    meta = {
        "task": "denoise",
        "architecture": net.architecture(),
        "normalization": {"method": "mean_std"},
    }
    path = save_model_file(tmp_path / "pre", dict(net.state_dict()), meta)
    monkeypatch.setattr(denoise_train, "pretrained_model_path", lambda: path)
    args = ["--train-steps", "1", "--patch-t", "16", "--patch-xy", "16", "--device", "cpu"]
    assert cli(noisy_tif, "-o", tmp_path / "d.tif", *args, "--save-model", tmp_path / "m") == 0
    assert "from the pretrained network" in capsys.readouterr().out
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["training"]["config"]["init"] == "pretrained"
    assert saved["architecture"]["kwargs"]["channels"] == [2, 4, 4, 8]  # the pretrained one
    assert cli(noisy_tif, "-o", tmp_path / "e.tif", *args, "--from-scratch") == 0
    assert "from scratch" in capsys.readouterr().out
