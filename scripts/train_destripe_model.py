"""Train the default destriping model shipped in ``src/napari_restore/pretrained``.

Reproducible: fixed seed, fixed list of clean images, every setting written into the model's
metadata. Run from the repository root::

    python scripts/train_destripe_model.py ../shared/data --minutes 180

Training data: only clean images whose licenses allow shipping weights trained on them in a
BSD-3 package (BSD-3, CC0, CC-BY-4.0; see ``../shared/data/README.md``). Held out for
evaluation only (never trained on): ``widefield_fly_nuclei_cellprofiler.tif`` (BSD-3, kept
aside as an unseen image) and ``lsfm_idisco_brain_clearmap.tif`` (GPL-3.0: benchmark only).

The run saves a checkpoint every ``--checkpoint-minutes`` (``<out>_checkpoint.safetensors``);
``--resume`` continues from it, so progress survives an interruption. At the end the held-out
images get synthetic stripes of every type and mode (fixed seeds) and the PSNR/SSIM before and
after destriping go into the model's metadata and its model card (``<out>.md``).

``--benchmark`` only measures the CPU time per training step of candidate configurations.
Measured on the project's 2-core machine while other jobs ran (load average 2-4), torch 2.13,
batch 8 of 128 px patches, ms/step with 1 / 2 torch threads:

==========================  ============  ============
base channels, depth        1 thread      2 threads
==========================  ============  ============
8, 4 (0.48 M parameters)    620           2400
16, 3 (0.48 M)              980           3200
16, 4 (1.9 M, the default)  1140-1330     3500-8600
24, 4 (4.3 M)               1630          6700
32, 4 (7.6 M)               2500-3600     1300-10800
==========================  ============  ============

Hence the defaults: base 16, depth 4 (the paper's four levels), one thread: about 8000-9000
steps in three hours.

How the shipped model was trained (phases 1 and 2 on the 2-core CPU, one torch thread; phase 3
on a GPU lent for one session, below)::

    # phase 1: steps 0-4098, additive and multiplicative stripes (schedule planned to 13527)
    python scripts/train_destripe_model.py ../shared/data --minutes 180 --threads 1 \
        --modes additive multiplicative
    # phase 2: multiplicative stripes only, cosine schedule re-planned to end at step 9200
    python scripts/train_destripe_model.py ../shared/data --resume --modes multiplicative \
        --steps 9200 --minutes 86 --threads 1

Phase 2 exists because bright additive stripes taught the network to darken bright structures
on real light-sheet images (SmartSPIM, SPIM): real stripes are shadows, i.e. attenuation.

Phase 3, on a lent GPU (``benchmarks/gpu_train_destripe.sh``, which also judges the candidates):
the corpus (below), 256-px patches (the inference tiles' size, which CBAM pools over), a
quarter of the patches stripe-free, and half of the multiplicative stripe fields *brightening*
(``--bright-fraction``: gain ``1 + field``), so that the network no longer learns that every
correction brightens; batches made by seven worker processes (``--data-workers``)::

    python scripts/train_destripe_model.py ../shared/data --corpus --init \
        src/napari_restore/pretrained/destripe_default.safetensors --lr 3e-4 \
        --bright-fraction 0.5 --clean-fraction 0.25 --modes multiplicative --patch-size 256 \
        --batch-size 16 --data-workers 7 --device cuda --minutes 4.5 --snapshots \
        --checkpoint-minutes 1.6 --no-eval --out runs/G

Phase 3's model was its snapshot at step 11050 (``runs/G_step11050``; the run went on to step
12877), chosen with the other GPU candidates as ``docs/model-card-destripe.md`` tells.

Phase 4 (2026-12-02, CPU, the shipped model): phase 3's model fine-tuned with absorber shadows,
tilted stripes twice as often and half the learning rate of the other CPU fine-tunes, then the
mean of its weights at step 12067 and phase 3's (WiSE-FT), chosen by the rule in
``benchmarks/results/destripe_heldout_cpu/finetune_tilted/README.md`` (``runs/phase3``: the
``pretrained/destripe_default`` files of git history before phase 4)::

    python scripts/train_destripe_model.py ../shared/data --corpus \
        --init runs/phase3.safetensors --lr 5e-5 \
        --bright-fraction 0.5 --clean-fraction 0.25 --shadow-fraction 0.5 \
        --mix regular=1 gaussian=1 tilted=2 --modes multiplicative --patch-size 256 \
        --batch-size 4 --val-patches 16 --val-every 500 --threads 1 --seed 7 --steps 3000 \
        --minutes 58 --snapshots --checkpoint-minutes 14 --no-eval --out runs/P12
    python scripts/average_destripe_models.py runs/W runs/phase3.safetensors \
        runs/P12_step12067.safetensors

(the shipped JSON's phase record was added by hand then; a new phase is recorded by the same
command with ``--phase phase5.json --evaluate ../shared/data``, which keeps the shipped model's
history, appends the record and re-runs the held-out evaluation).

Fine-tuning on the whole corpus (``--corpus``: ``train/`` minus whole validation sources, see
:data:`VALIDATION_SOURCES`) from a trained model (``--init``: its weights and step count, a
fresh optimizer, a cosine warm restart over ``--steps`` more steps), with stripe-free patches::

    python scripts/train_destripe_model.py ../shared/data --corpus --extra-data \
        --init src/napari_restore/pretrained/destripe_default.safetensors --steps 2400 \
        --lr 3e-4 --clean-fraction 0.2 --modes multiplicative --minutes 105 --snapshots \
        --out runs/corpus --no-eval
    # an interrupted run continues from its checkpoint (runs/corpus_checkpoint):
    python scripts/train_destripe_model.py ../shared/data --corpus --extra-data --resume \
        --modes multiplicative --minutes 75 --out runs/corpus --no-eval

Judge a run on the held-out crops (``benchmarks/bench_destripe.py --set heldout --model
runs/corpus.safetensors``, every ``--generator`` value, ``--clean-check``) and on the real
striped images (``benchmarks/bench_stripe_meter.py``) before it replaces the shipped model.

With absorber shadows (``--shadow-fraction``: sharp-ended, fanned, bent stripes,
``napari_restore.destripe.shadows``), as tried on the CPU on 2026-12-01 (+0.2 to +0.5 dB on the
held-out sets in 1200 steps, not shipped: ``benchmarks/results/destripe_heldout_cpu/
finetune_shadows/README.md``)::

    python scripts/train_destripe_model.py ../shared/data --corpus \
        --init src/napari_restore/pretrained/destripe_default.safetensors --lr 1e-4 \
        --bright-fraction 0.5 --clean-fraction 0.25 --shadow-fraction 0.5 \
        --modes multiplicative --patch-size 256 --batch-size 4 --threads 1 --steps 1200 \
        --minutes 110 --snapshots --checkpoint-minutes 20 --no-eval --out runs/P4

With the fourth stripe kind, periodic bands (``napari_restore.simulate.bands``), in the mix
(``--mix regular=1 gaussian=1 tilted=1 bands=1``; without ``--mix`` the three kinds of Wei et
al., equally often), as in runs P6 and P7 of 2026-12-01 (not shipped: the real SPIM image's
level moved beyond bar 3; ``benchmarks/results/destripe_heldout_cpu/finetune_bands/README.md``;
P6 drew the first, dimming-only version of the bands, so this command now draws P7's)::

    python scripts/train_destripe_model.py ../shared/data --corpus \
        --init src/napari_restore/pretrained/destripe_default.safetensors --lr 1e-4 \
        --bright-fraction 0.5 --clean-fraction 0.25 --shadow-fraction 0.5 \
        --mix regular=1 gaussian=1 tilted=1 bands=1 --modes multiplicative --patch-size 256 \
        --batch-size 4 --val-patches 16 --val-every 500 --threads 1 --steps 3300 --minutes 80 \
        --snapshots --checkpoint-minutes 15 --no-eval --out runs/P6
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import tifffile  # noqa: E402
import torch  # noqa: E402

from napari_restore.cli.destripe import parse_mix  # noqa: E402
from napari_restore.destripe.batch_pool import PooledBatches  # noqa: E402
from napari_restore.destripe.train import DestripeTrainConfig, DestripeTrainer  # noqa: E402
from napari_restore.engine.model_files import load_model_file  # noqa: E402
from napari_restore.io import read_image  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "napari_restore" / "pretrained" / "destripe_default"

# file -> (license, how its planes are used)
TRAINING_FILES: dict[str, str] = {
    "brain_cortex_cells_cellfinder.tif": "BSD-3-Clause (brainglobe/cellfinder)",
    "lsfm_tribolium_nuclei_lund.tif": "BSD-3-Clause (napari-pyclesperanto-assistant)",
    "nuclei_dsb2018_stardist.tif": "BSD-3-Clause (stardist); image CC0 (BBBC038)",
    "widefield_u2os_bbbc022.tif": "CC0 (BBBC022); 3 channels used as separate images",
    "confocal_maize_stem_legland.tif": "CC-BY-4.0, David Legland",
    "widefield_nucleosome_cellprofiler.png": "BSD-3-Clause (CellProfiler examples)",
}
# --extra-data: two more permissively licensed time-lapses (sparse widefield nuclei, a dense
# light-sheet sheet of nuclei). Tried for a fine-tune of the built-in model that was not shipped
# (docs/model-card-destripe.md) and used by the ablation; not part of the shipped model's data.
EXTRA_TRAINING_FILES: dict[str, str] = {
    "timelapse_cancer_cell_migration.tif": "CC-BY-4.0, J.-Y. Tinevez & G. Jacquemet",
    "lsfm_tribolium_timelapse_calibzapw.tif": "BSD-3-Clause (napari-pyclesperanto-assistant)",
}
# --corpus: the clean images of ``train/`` (40 files, 14 sources, every licence allows shipping
# weights; ``train/README.md`` lists them) minus whole validation sources, never trained on and
# used by ``benchmarks/bench_destripe.py --set heldout``: LSTree (light-sheet organoids), ndev
# (neocortex sections, neurons, scratch assay), sdeconv (pollen, C. elegans), DIPlib
# (chromosomes) and Spotiflow (spots). Light-sheet, dense and sparse content are all among them.
VALIDATION_SOURCES = ("_lstree", "_ndev", "_sdeconv", "_diplib", "_spotiflow")
CORPUS_DIR = "train"


def corpus_files(data: Path) -> dict[str, str]:
    """The ``train/`` files outside :data:`VALIDATION_SOURCES` (name relative to ``data``)."""
    folder = data / CORPUS_DIR
    if not folder.is_dir():
        sys.exit(f"missing {folder}; pass the shared data directory")
    return {
        f"{CORPUS_DIR}/{path.name}": "see train/README.md (BSD-3, MIT, Apache-2.0, CC-BY-4.0, CC0)"
        for path in sorted(folder.glob("*.tif"))
        if not any(path.stem.endswith(src) for src in VALIDATION_SOURCES)
    }


HELD_OUT_FILES: dict[str, str] = {
    "widefield_fly_nuclei_cellprofiler.tif": "BSD-3-Clause (held out: unseen image)",
    "lsfm_idisco_brain_clearmap.tif": "GPL-3.0 (benchmark only, never trained on)",
}
MULTICHANNEL = {"widefield_u2os_bbbc022.tif"}
# Candidate configurations for --benchmark: (base_channels, depth, patch_size, batch_size).
CANDIDATES = [
    (8, 4, 128, 8),
    (16, 3, 128, 8),
    (16, 4, 96, 8),
    (16, 4, 128, 4),
    (16, 4, 128, 8),
    (24, 4, 128, 8),
    (32, 4, 128, 8),
]


def training_files(data: Path, extra: bool = False, corpus: bool = False) -> dict[str, str]:
    """File -> licence of the training images for these options."""
    files = dict(TRAINING_FILES)
    if extra:
        files |= EXTRA_TRAINING_FILES
    if corpus:
        files |= corpus_files(data)
    return files


def load_training_images(
    data: Path, extra: bool = False, corpus: bool = False
) -> tuple[list[np.ndarray], list[str]]:
    """The clean training images (multi-channel files split into channels); with ``extra``
    also :data:`EXTRA_TRAINING_FILES`, with ``corpus`` the :func:`corpus_files`."""
    images, names = [], []
    for name in training_files(data, extra, corpus):
        path = data / name
        if not path.is_file():
            sys.exit(f"missing training image {path}; pass the shared data directory")
        # TIFFs straight through tifffile: the GPU machines have no zarr, which the package's
        # reader uses to open TIFFs lazily.
        arr = tifffile.imread(path) if path.suffix in (".tif", ".tiff") else read_image(path)
        if name in MULTICHANNEL:
            for c in range(arr.shape[0]):
                images.append(arr[c])
                names.append(f"{name}[channel {c}]")
        else:
            images.append(arr)
            names.append(name)
    return images, names


def config_from_args(args: argparse.Namespace, steps: int) -> DestripeTrainConfig:
    return DestripeTrainConfig(
        steps=steps,
        learning_rate=args.lr if args.lr is not None else 1e-3,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        perceptual_weight=args.perceptual_weight,
        base_channels=args.base_channels,
        depth=args.depth,
        seed=args.seed,
        val_patches=args.val_patches,
        val_every=args.val_every,
        val_seconds=0.0,
        preview_every=0,
        device=args.device,
        lr_schedule=args.lr_schedule or "cosine",
        modes=tuple(args.modes),
        clean_fraction=args.clean_fraction or 0.0,
        bright_fraction=args.bright_fraction or 0.0,
        shadow_fraction=args.shadow_fraction or 0.0,
        shadow_profiles=args.shadow_profiles or "classic",
        level_weight=args.level_weight or 0.0,
        pixel_loss=args.pixel_loss or "mae",
        strip_context=args.strip_context,
        **({"stripe_mix": parse_mix(args.mix)} if args.mix else {}),
        vgg_weights=str(args.vgg_weights) if args.vgg_weights else None,
    )


def benchmark(images: list[np.ndarray], threads: list[int], steps: int = 5) -> None:
    """Print the mean time per training step of the candidate configurations on the CPU."""
    print(f"CPU ms/step, mean of {steps} steps after 3 warm-up steps (torch {torch.__version__})")
    print("base depth patch batch  threads  ms/step   params")
    for base, depth, patch, batch in CANDIDATES:
        for n in threads:
            torch.set_num_threads(n)
            cfg = DestripeTrainConfig(
                base_channels=base,
                depth=depth,
                patch_size=patch,
                batch_size=batch,
                val_patches=0,
                preview_every=0,
                device="cpu",
            )
            trainer = DestripeTrainer(images, cfg)
            for _ in trainer.train(3):
                pass
            started = time.perf_counter()
            for _ in trainer.train(steps):
                pass
            ms = 1000 * (time.perf_counter() - started) / steps
            params = sum(p.numel() for p in trainer.model.parameters())
            print(f"{base:4d} {depth:5d} {patch:5d} {batch:5d}  {n:7d}  {ms:7.0f}  {params:8d}")
            sys.stdout.flush()


def _finite(value: float) -> float | str:
    """JSON has no infinity: an identical image's PSNR is written as "inf"."""
    return value if math.isfinite(value) else "inf"


def _num(value: float | str, digits: int) -> str:
    return value if isinstance(value, str) else f"{value:.{digits}f}"


def evaluate(model: Any, data: Path, device: str) -> dict[str, Any]:
    """PSNR/SSIM before and after destriping held-out images with fixed synthetic stripes.

    Each clean image is first clipped to its 0.1th-99.9th percentiles (the ClearMap stack has
    hot pixels that would otherwise set the data range); the data range of the metrics is that
    of the clipped ground truth. Stripes: every type, multiplicative with the simulator's default
    attenuation 0.2-0.7 and additive (mixed polarity) with 0.05-0.3 of the range, seed 2022;
    plus the clean image itself ("none"), which should come out unchanged.
    """
    from napari_restore.destripe.infer import destripe
    from napari_restore.metrics import compute_metrics
    from napari_restore.simulate import simulate_stripes

    results: dict[str, Any] = {}
    for name in HELD_OUT_FILES:
        path = data / name
        if not path.is_file():
            print(f"  (held-out image {path} not found: skipped)")
            continue
        clean = read_image(path).astype(np.float32)
        lo, hi = np.percentile(clean, (0.1, 99.9))
        clean = np.clip(clean, lo, hi)
        rows = {}
        cases = [("none", "")] + [
            (kind, mode)
            for kind in ("regular", "gaussian", "tilted")
            for mode in ("multiplicative", "additive")
        ]
        for kind, mode in cases:
            if kind == "none":  # a clean image must come out (almost) unchanged
                striped = clean
            else:
                extra = {"polarity": "mixed", "amplitude": (0.05, 0.3)}
                striped = simulate_stripes(
                    clean, kind=kind, mode=mode, seed=2022, **(extra if mode == "additive" else {})
                ).image
            restored = destripe(striped, model, device=device)
            before = compute_metrics(striped, clean)
            after = compute_metrics(restored, clean)
            rows[f"{kind}/{mode}" if mode else kind] = {
                "psnr_in": _finite(before.psnr),
                "psnr_out": _finite(after.psnr),
                "ssim_in": before.ssim,
                "ssim_out": after.ssim,
                "data_range": after.data_range,
            }
            print(
                f"  {name:38s} {kind:8s} {mode:14s} PSNR {before.psnr:6.2f} -> "
                f"{after.psnr:6.2f} dB  SSIM {before.ssim:.4f} -> {after.ssim:.4f}"
            )
            sys.stdout.flush()
        results[name] = rows
    return results


def model_card(meta: dict[str, Any], evaluation: dict[str, Any]) -> str:
    cfg = meta["training"]["config"]
    lines = [
        "# destripe_default: the built-in destriping model of napari-restore",
        "",
        "ResCBAM U-Net (Wei et al., Biomed. Opt. Express 13(3), 1292, 2022) trained by "
        "`scripts/train_destripe_model.py` on clean fluorescence images with synthetic stripes "
        f"(regular, Gaussian and tilted; {' and '.join(cfg['modes'])}) drawn on the fly.",
        "",
        f"- network: {meta['architecture']}",
        f"- steps: {meta['steps']}, patch {cfg['patch_size']}, batch {cfg['batch_size']}, "
        f"Adam lr {cfg['learning_rate']} ({cfg['lr_schedule']}), seed {cfg['seed']}",
        f"- loss: MAE + {cfg['perceptual_weight']} x VGG-19 relu4_3 perceptual loss",
        f"- normalisation: {meta['normalisation']['formula']}, lo/hi = percentiles "
        f"{meta['normalisation']['percentiles']} of the whole image or stack",
        f"- validation (in-distribution patches): PSNR {meta['validation']['input_psnr']:.2f} "
        f"-> {meta['validation']['psnr'] or float('nan'):.2f} dB",
        "",
        "## Training data (licenses allow shipping the weights)",
        "",
        *[f"- `{name}`: {lic}" for name, lic in meta.get("training_files", TRAINING_FILES).items()],
        "",
        "## Held-out evaluation (never trained on)",
        "",
        *[f"- `{name}`: {lic}" for name, lic in HELD_OUT_FILES.items()],
        "",
        "| image | stripes | PSNR in | PSNR out | SSIM in | SSIM out |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in evaluation.items():
        for key, r in rows.items():
            lines.append(
                f"| {name} | {key} | {_num(r['psnr_in'], 2)} | {_num(r['psnr_out'], 2)} | "
                f"{r['ssim_in']:.4f} | {r['ssim_out']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", type=Path, help="the shared data directory (../shared/data)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model path (no suffix)")
    p.add_argument("--minutes", type=float, default=180.0, help="time budget (default 180)")
    p.add_argument("--steps", type=int, default=None, help="steps (default: fit the budget)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out model (and start over an existing checkpoint)",
    )
    p.add_argument(
        "--snapshots",
        action="store_true",
        help="also keep every checkpoint as <out>_step<N> (for scripts/average_destripe_models.py)",
    )
    p.add_argument("--base-channels", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (1e-3; resume: kept)")
    p.add_argument(
        "--lr-schedule",
        choices=["cosine", "constant"],
        default=None,
        help="cosine (default) or constant (resume: kept unless given)",
    )
    p.add_argument("--perceptual-weight", type=float, default=0.0)
    p.add_argument(
        "--modes",
        nargs="+",
        default=["multiplicative"],
        choices=["additive", "multiplicative"],
        help="stripe modes (default multiplicative: light-sheet stripes are shadows, and a "
        "network that also learns bright additive stripes darkens the bright gaps between real "
        "shadows)",
    )
    p.add_argument(
        "--clean-fraction",
        type=float,
        default=None,
        help="share of training patches left without stripes (teaches the network to leave "
        "stripe-free structures alone; 0; resume: kept unless given)",
    )
    p.add_argument(
        "--bright-fraction",
        type=float,
        default=None,
        help="share of multiplicative stripe fields that brighten instead of attenuating (0; "
        "resume: kept unless given)",
    )
    p.add_argument(
        "--shadow-fraction",
        type=float,
        default=None,
        help="share of stripe fields drawn as absorber shadows (sharp onsets that trail off, "
        "fanned and bent; napari_restore.destripe.shadows) instead of the simulator's kinds "
        "(0; resume: kept unless given)",
    )
    p.add_argument(
        "--shadow-profiles",
        choices=("classic", "varied"),
        default=None,
        help="cross-sections of the absorber shadows: Gaussian or flat-topped (classic), or also "
        "generalised-Gaussian, lopsided and haloed (varied; classic; resume: kept unless given)",
    )
    p.add_argument(
        "--level-weight",
        type=float,
        default=None,
        help="weight of the loss term on the mean of the pixels the stripes left unchanged "
        "(0; resume: kept unless given)",
    )
    p.add_argument(
        "--pixel-loss",
        choices=("mae", "mse"),
        default=None,
        help="per-pixel loss term: mean absolute (the paper's) or squared error (mae; resume: "
        "kept unless given)",
    )
    p.add_argument(
        "--strip-context",
        action="store_true",
        help="not in the paper: row and column means of the tile as context after every "
        "decoder level; with --init or --resume it grows the saved network (the new module "
        "starts as the identity)",
    )
    p.add_argument(
        "--mix",
        nargs="+",
        metavar="KIND=W",
        default=None,
        help="relative frequencies of the stripe kinds, e.g. regular=1 gaussian=1 tilted=1 "
        "bands=1 (default: the three kinds of Wei et al., equally; resume: kept unless given)",
    )
    p.add_argument(
        "--data-workers",
        type=int,
        default=0,
        help="make training batches in this many worker processes (for a GPU; 0: in the "
        "training process, the stream of older runs)",
    )
    p.add_argument("--extra-data", action="store_true", help="also train on EXTRA_TRAINING_FILES")
    p.add_argument(
        "--corpus",
        action="store_true",
        help="also train on train/ minus VALIDATION_SOURCES (whole sources kept for validation)",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="fine-tune: start from this model file's weights and step count, with a fresh "
        "optimizer and a cosine warm restart over --steps more steps",
    )
    p.add_argument("--vgg-weights", type=Path, default=None)
    p.add_argument("--val-patches", type=int, default=32)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core machine 2 threads measured 3-7x "
        "slower, as OpenMP waits for the busy second core; try --benchmark)",
    )
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.add_argument("--benchmark", action="store_true", help="only time candidate configs")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    images, names = load_training_images(args.data, extra=args.extra_data, corpus=args.corpus)
    print(f"{len(images)} training images: " + ", ".join(names))
    if args.benchmark:
        benchmark(images, sorted({1, args.threads}))
        return 0

    checkpoint = args.out.with_name(args.out.name + "_checkpoint")
    # Never replace a trained model unasked: the output, and another run's checkpoint.
    final = args.out.with_suffix(".safetensors")
    if final.exists() and not args.overwrite:
        sys.exit(f"{final} exists: pass --overwrite to replace it, or another --out")
    if checkpoint.with_suffix(".safetensors").exists() and not (args.resume or args.overwrite):
        sys.exit(f"{checkpoint}.safetensors exists: --resume it, or pass --overwrite")
    started = time.monotonic()
    deadline = started + 60 * args.minutes
    if args.init is not None:
        # The warm restart begins at the model's own step count (its metadata; what resume reads).
        start = int(load_model_file(args.init, task="destripe")[1].get("steps", 0))
        more_init: dict[str, Any] = {
            "modes": tuple(args.modes),
            "steps": start + (args.steps if args.steps is not None else 10**9),
            "lr_start_step": start,
            "learning_rate": args.lr if args.lr is not None else 3e-4,
            "lr_schedule": args.lr_schedule or "cosine",
            "clean_fraction": args.clean_fraction or 0.0,
            "bright_fraction": args.bright_fraction or 0.0,
            "shadow_fraction": args.shadow_fraction or 0.0,
            "shadow_profiles": args.shadow_profiles or "classic",
            "level_weight": args.level_weight or 0.0,
            "pixel_loss": args.pixel_loss or "mae",
            **({"strip_context": True} if args.strip_context else {}),
            **({"stripe_mix": parse_mix(args.mix)} if args.mix else {}),
            "val_patches": args.val_patches,
            "val_every": args.val_every,
            "val_seconds": 0.0,  # validate by steps only: a 2-core CPU has no time to spare
            "seed": args.seed,
            "patch_size": args.patch_size,
            "batch_size": args.batch_size,
        }
        trainer = DestripeTrainer.resume(
            args.init, images, names=names, device=args.device, **more_init
        )
        print(f"fine-tuning {args.init} from step {start}")
    elif args.resume:
        # Continues to the step count planned by the first run (or --steps), within --minutes.
        more: dict[str, Any] = {"modes": tuple(args.modes)}
        if args.clean_fraction is not None:
            more["clean_fraction"] = args.clean_fraction
        if args.bright_fraction is not None:
            more["bright_fraction"] = args.bright_fraction
        if args.shadow_fraction is not None:
            more["shadow_fraction"] = args.shadow_fraction
        if args.shadow_profiles is not None:
            more["shadow_profiles"] = args.shadow_profiles
        if args.level_weight is not None:
            more["level_weight"] = args.level_weight
        if args.pixel_loss is not None:
            more["pixel_loss"] = args.pixel_loss
        if args.strip_context:
            more["strip_context"] = True
        if args.mix:
            more["stripe_mix"] = parse_mix(args.mix)
        if args.steps is not None:
            more["steps"] = args.steps
        if args.lr is not None:
            more["learning_rate"] = args.lr
        if args.lr_schedule is not None:
            more["lr_schedule"] = args.lr_schedule
        trainer = DestripeTrainer.resume(
            checkpoint, images, names=names, device=args.device, **more
        )
        print(f"resumed {checkpoint} at step {trainer.step} of {trainer.config.steps}")
    else:
        steps = args.steps if args.steps is not None else 10**9
        trainer = DestripeTrainer(images, config_from_args(args, steps), names=names)
    pool = None
    if args.data_workers > 0:
        pool = PooledBatches(images, trainer.config, trainer.step, args.data_workers)
        trainer.batch_source = pool
    if args.steps is None and not args.resume:
        # Time 20 steps (after 5 that warm up the workers and the device), then fit the step
        # count, and so the cosine schedule, to the budget.
        for _ in trainer.train(5):
            pass
        t0 = time.monotonic()
        for _ in trainer.train(20):
            pass
        per_step = (time.monotonic() - t0) / 20
        fitted = trainer.step + int(0.97 * (deadline - time.monotonic()) / per_step)
        trainer.config = trainer.config.replace(steps=max(trainer.step + 1, fitted))
        print(f"{1000 * per_step:.0f} ms/step: planning {trainer.config.steps} steps")
    print(f"training to step {trainer.config.steps}")
    print(
        f"training {trainer.model.architecture()} on {trainer.device}; validation input PSNR "
        f"{trainer.val_input_psnr:.2f} dB"
    )
    last_checkpoint = time.monotonic()
    last_print = 0.0
    gen = trainer.train()
    try:
        for prog in gen:
            now = time.monotonic()
            if prog.metrics or now - last_print > 60:
                last_print = now
                val = (
                    f", val PSNR {prog.metrics['val_psnr']:.2f} dB SSIM "
                    f"{prog.metrics['val_ssim']:.4f}"
                    if prog.metrics
                    else ""
                )
                print(
                    f"step {prog.step}/{prog.total} loss {prog.losses['total']:.4f}{val} "
                    f"[{(now - started) / 60:.1f} min]",
                    flush=True,
                )
            if now - last_checkpoint > 60 * args.checkpoint_minutes:
                trainer.save(checkpoint, overwrite=True)
                if args.snapshots:
                    trainer.save(args.out.with_name(f"{args.out.name}_step{trainer.step}"))
                last_checkpoint = now
                print(f"checkpoint {checkpoint} at step {trainer.step}", flush=True)
            if now > deadline:
                print("time budget reached", flush=True)
                break
    finally:
        gen.close()
        if pool is not None:
            pool.close()
    if trainer.history and "val_psnr" not in trainer.history[-1]:
        trainer.evaluate(record=True)
    trainer.save(checkpoint, overwrite=True)
    extra: dict[str, Any] = {
        "training_script": "scripts/train_destripe_model.py",
        "training_files": training_files(args.data, args.extra_data, args.corpus),
        "validation_sources": list(VALIDATION_SOURCES) if args.corpus else [],
        "held_out_files": HELD_OUT_FILES,
        "torch_threads": args.threads,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    evaluation: dict[str, Any] = {}
    if not args.no_eval:
        print("held-out evaluation:")
        evaluation = evaluate(trainer.model, args.data, args.device)
        extra["evaluation"] = evaluation
    path = trainer.save(args.out, extra=extra, overwrite=args.overwrite)
    card = args.out.with_name(args.out.name + ".md")
    card.write_text(model_card(trainer.metadata() | extra, evaluation), encoding="utf-8")
    print(f"wrote {path}, {card} ({trainer.step} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
