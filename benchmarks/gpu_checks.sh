#!/usr/bin/env bash
# Every GPU check of the destriping and denoising issues in one prepared run (~7 min on an
# H100/H200), for the lent device machine, which has torch, pytest, tifffile, scipy and
# scikit-image but no napari:
#
#   device run:  bash benchmarks/gpu_checks.sh        (timeout_s 560; results come back in $OUT)
#
# 1. the CUDA-only tests (bf16 training and inference, SDPA attention, device sampling);
# 2. destriping throughput end to end (bar: >= 200 MP/s on an H100);
# 3. SRDTrans on a synthetic 512^3 stack at 1.3 photons/px, trained for 135 s, half the
#    reference's 270 s (its figures: 24.5 -> 38.2 dB, SSIM 0.27 -> 0.97, 47.9 ms/step at 128^3,
#    5.1 Mvoxel/s inference, 1.8 GiB peak GPU memory in training; bars: at least its quality,
#    >= 50 Mvoxel/s, no more memory).
# Each step runs even if an earlier one failed; the exit status says whether all passed.
#
# CPU dry run (checks that every step still runs after a code change, in ~2 min, no GPU):
#   DRY_RUN=1 bash benchmarks/gpu_checks.sh   (tiny sizes; the CUDA-only tests skip themselves)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT="${OUT:-out/gpu_checks}"
mkdir -p "$OUT"
status=0

DRY_RUN="${DRY_RUN:-0}"
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu SPEED="--size 256 --planes 2 --tiles auto"
    DENOISE="--shape 32 64 64 --minutes 0.05 --patch-t 16 --patch-xy 32 --step-patch 16 32"
    DENOISE="$DENOISE --timing-steps 2"
else
    DEVICE=cuda SPEED="--size 4096 --planes 16 --tiles auto 1024"
    DENOISE="--shape 512 512 512 --minutes 2.25 --patch-t 128 --patch-xy 128 --step-patch 128 128"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi

echo "== CUDA-only tests"
python -m pytest -q -m gpu -p no:cacheprovider -o addopts="" \
    tests/test_destripe_train.py tests/test_destripe_infer.py tests/test_srdtrans_model.py \
    tests/test_denoise_train.py 2>&1 | tee "$OUT/tests.txt" || status=1

echo "== destriping throughput"
# shellcheck disable=SC2086  # word splitting of the size flags is wanted
python benchmarks/bench_destripe_speed.py --device $DEVICE $SPEED \
    --json "$OUT/destripe_speed.json" 2>&1 | tee "$OUT/destripe_speed.txt" || status=1

echo "== SRDTrans 512^3, 1.3 photons/px, 135 s of training"
# shellcheck disable=SC2086
python benchmarks/bench_denoise.py --device $DEVICE $DENOISE --photons 1.3 --lr 5e-4 --baselines none \
    --json "$OUT/denoise_512.json" 2>&1 | tee "$OUT/denoise_512.txt" || status=1

exit $status
