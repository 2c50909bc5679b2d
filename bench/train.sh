#!/usr/bin/env bash
# Training / inference / input-pipeline benchmark (see bench/README.md, "Training"):
# `fovea bench train` and `fovea bench infer` against the PyTorch reference
# (bench/train_reference.py: the same model, loss, optimiser, data and timing) in one
# sitting, interleaved A/B/A/B, at 128x128 and 64x64; then the input pipeline alone on a
# small synthetic store, as a multiple of Fovea's training rate.
#
#   bench/train.sh
#
# Environment: SIZES (default "128 64"), STEPS (timed steps per run, default 10), ROUNDS
# (interleaved rounds, default 2), THREADS (default 2), DEVICE (default cpu),
# SAMPLES (pipeline samples, default 2048), BENCH_TMP (folder for the small store and logs,
# default a fresh temporary folder, removed at the end unless KEEP=1), FOVEA_BIN (a fovea
# binary to use instead of building; fovea-torch must sit beside it or be FOVEA_TORCH_BIN),
# PYTHON (a python with torch + torchvision; default the venv of scripts/env.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${SIZES:-"128 64"}
STEPS=${STEPS:-10}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
SAMPLES=${SAMPLES:-2048}

# shellcheck source=../scripts/env.sh
source "$ROOT/scripts/env.sh"
PY=${PYTHON:-python}
"$PY" -c 'import torch, torchvision' || { echo "train.sh: $PY lacks torch/torchvision" >&2; exit 2; }

if [[ -n ${FOVEA_BIN:-} ]]; then
    FOVEA=$FOVEA_BIN
else
    echo "== cargo build --release -p fovea-cli -p fovea-torch (no-op when up to date)"
    (cd "$ROOT" && cargo build --release -p fovea-cli -p fovea-torch)
    FOVEA=${CARGO_TARGET_DIR:-$ROOT/target}/release/fovea
fi

if [[ -n ${BENCH_TMP:-} ]]; then
    TMP=$BENCH_TMP
    mkdir -p "$TMP"
else
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/fovea-train-bench.XXXXXX")
fi
cleanup() {
    if [[ ${KEEP:-0} != 1 ]]; then rm -rf "$TMP"; else echo "kept $TMP"; fi
}
trap cleanup EXIT
LOG=$TMP/log.txt
: >"$LOG"

# Runs a command, logs its output, prints the number after KEY on its last KEY line.
measure() {
    local key=$1
    shift
    local out
    out=$("$@" 2>&1) || { echo "$out" >&2; echo "train.sh: failed: $*" >&2; exit 1; }
    printf '$ %s\n%s\n' "$*" "$out" >>"$LOG"
    echo "$out" | awk -v k="$key" '$1 == k { v = $2 } END { if (v == "") exit 1; print v }'
}

# Mean of numbers.
mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.2f", s / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== torch $("$PY" -c 'import torch; print(torch.__version__)'), $THREADS threads, $DEVICE, $STEPS timed steps x $ROUNDS rounds"

declare -A R
for size in $SIZES; do
    for ((r = 1; r <= ROUNDS; r++)); do
        # A/B/A/B: Fovea then PyTorch, each round, train then infer, each in the default
        # (NCHW) layout and channels-last (CL: what `fovea train` does by default on the
        # CPU; PyTorch's `model.to(memory_format=torch.channels_last)`).
        ft=$(measure samples_per_s "$FOVEA" --threads "$THREADS" bench train --model resnet18 \
            --size "$size" --batch-size 32 --steps "$STEPS" --device "$DEVICE")
        fc=$(measure samples_per_s "$FOVEA" --threads "$THREADS" bench train --model resnet18 \
            --size "$size" --batch-size 32 --steps "$STEPS" --device "$DEVICE" --channels-last)
        pt=$(measure train_samples_per_s "$PY" "$ROOT/bench/train_reference.py" --what train \
            --size "$size" --batch-size 32 --steps "$STEPS" --device "$DEVICE" --threads "$THREADS")
        pc=$(measure train_samples_per_s "$PY" "$ROOT/bench/train_reference.py" --what train \
            --size "$size" --batch-size 32 --steps "$STEPS" --device "$DEVICE" --threads "$THREADS" \
            --channels-last)
        fin=$(measure samples_per_s "$FOVEA" --threads "$THREADS" bench infer --model resnet18 \
            --size "$size" --batch-size 64 --steps "$STEPS" --device "$DEVICE")
        fic=$(measure samples_per_s "$FOVEA" --threads "$THREADS" bench infer --model resnet18 \
            --size "$size" --batch-size 64 --steps "$STEPS" --device "$DEVICE" --channels-last)
        pin=$(measure infer_samples_per_s "$PY" "$ROOT/bench/train_reference.py" --what infer \
            --size "$size" --infer-batch-size 64 --steps "$STEPS" --device "$DEVICE" \
            --threads "$THREADS")
        pic=$(measure infer_samples_per_s "$PY" "$ROOT/bench/train_reference.py" --what infer \
            --size "$size" --infer-batch-size 64 --steps "$STEPS" --device "$DEVICE" \
            --threads "$THREADS" --channels-last)
        echo "   size $size round $r: train fovea $ft (CL $fc), pytorch $pt (CL $pc);" \
            "infer fovea $fin (CL $fic), pytorch $pin (CL $pic)  (load $(cut -d' ' -f1 /proc/loadavg))"
        R[$size,ft]+=" $ft"; R[$size,fc]+=" $fc"; R[$size,pt]+=" $pt"; R[$size,pc]+=" $pc"
        R[$size,fi]+=" $fin"; R[$size,fic]+=" $fic"; R[$size,pi]+=" $pin"; R[$size,pic]+=" $pic"
    done
done

# Input pipeline on a small synthetic store (8 photographs 768x512), one per size.
"$FOVEA" synth --out "$TMP/d" --images 8 --size 768x512 >>"$LOG" 2>&1
for size in $SIZES; do
    "$FOVEA" extract --dataset "$TMP/d" --out "$TMP/s$size" --patch-size "$size" \
        --stride $((size / 2)) >>"$LOG" 2>&1
    R[$size,pl]=$(measure samples_per_s "$FOVEA" --threads "$THREADS" bench pipeline \
        --store "$TMP/s$size" --batch-size 32 --workers "$THREADS" --samples "$SAMPLES")
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "ResNet-18, $DEVICE, $THREADS threads, train batch 32, infer batch 64; samples/s,"
echo "mean over $ROUNDS interleaved rounds of the median of $STEPS steps; ratios = Fovea / PyTorch."
echo "Pipeline: $SAMPLES samples, batch 32, $THREADS workers, augmentation on; x = pipeline / Fovea train."
echo
printf '| %-4s | %-16s | %-13s | %-13s | %-10s | %-8s | %-8s | %-16s | %-13s | %-13s | %-10s | %-8s | %-8s | %-9s | %-8s |\n' \
    size "fovea train CL" "fovea NCHW" "pytorch train" "pytorch CL" "ratio" "CL / CL" \
    "fovea infer CL" "fovea NCHW" "pytorch infer" "pytorch CL" "ratio" "CL / CL" "pipeline" "x train"
echo "|------|------------------|---------------|---------------|------------|----------|----------|------------------|---------------|---------------|------------|----------|----------|-----------|----------|"
for size in $SIZES; do
    # shellcheck disable=SC2086
    ft=$(mean ${R[$size,ft]}); fc=$(mean ${R[$size,fc]}); pt=$(mean ${R[$size,pt]}); pc=$(mean ${R[$size,pc]})
    # shellcheck disable=SC2086
    fin=$(mean ${R[$size,fi]}); fic=$(mean ${R[$size,fic]}); pin=$(mean ${R[$size,pi]}); pic=$(mean ${R[$size,pic]})
    pl=${R[$size,pl]}
    printf '| %-4s | %-16s | %-13s | %-13s | %-10s | %-8s | %-8s | %-16s | %-13s | %-13s | %-10s | %-8s | %-8s | %-9s | %-8s |\n' \
        "$size" "$fc" "$ft" "$pt" "$pc" "$(ratio "$fc" "$pt")x" "$(ratio "$fc" "$pc")x" \
        "$fic" "$fin" "$pin" "$pic" "$(ratio "$fic" "$pin")x" "$(ratio "$fic" "$pic")x" "$pl" "$(ratio "$pl" "$fc")x"
done
echo "ratio: Fovea as it trains and infers (channels-last) / PyTorch's default; CL / CL: both"
echo "channels-last."
echo
echo "load before: see top; load after: $LOAD_AFTER (2-core machine: anything above ~0.1 besides"
echo "this run means other work shared the cores; compare ratios, not absolute figures)"
if [[ ${KEEP:-0} == 1 ]]; then echo "full output: $LOG"; else echo "(KEEP=1 keeps the full output)"; fi
