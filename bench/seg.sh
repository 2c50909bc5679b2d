#!/usr/bin/env bash
# Segmentation benchmark (see bench/README.md, "Segmentation"): the U-Net training step in
# Fovea (`fovea bench seg-train`) against the same U-Net in PyTorch
# (bench/seg_train_reference.py: same layers, loss, optimiser, data and timing) in one
# sitting, interleaved A/B/B/A, both layouts (NCHW and channels-last); the parameter counts
# of the two models are compared (the script stops when they differ). Then one whole
# photograph through the small U-Net's forward pass in tiles (`fovea bench seg-map`): time
# and peak resident memory.
#
#   bench/seg.sh
#
# Environment: MODELS (encoders, default "small"; also resnet18 resnet34), SIZE (tile side,
# default 256), BATCH (default 8), STEPS (timed steps per run, default 10), ROUNDS
# (interleaved rounds, default 2), THREADS (default 2), DEVICE (default cpu), LAYOUTS
# (default "nchw cl"), MAP (1: also the whole-photograph pass, default 1), PHOTO (default
# the IDRiD sample's IDRiD_62.jpg under $FOVEA_DATA or ../shared/data; a random 4288x2848
# photograph when absent), TILE (default 512), SCALE (default 0.5, configs/seg-cpu.toml's),
# SEG_RUN (a segmentation run whose model maps the photograph; default an untrained small
# U-Net), FOVEA_BIN (a fovea binary to use instead of building one; fovea-torch must sit
# beside it), PYTHON (a python with torch; default the venv of scripts/env.sh),
# PYTORCH_MALLOC (default: glibc's defaults for PyTorch; fovea: Fovea's malloc settings).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODELS=${MODELS:-small}
SIZE=${SIZE:-256}
BATCH=${BATCH:-8}
STEPS=${STEPS:-10}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
LAYOUTS=${LAYOUTS:-"nchw cl"}
MAP=${MAP:-1}
TILE=${TILE:-512}
SCALE=${SCALE:-0.5}
DATA=${FOVEA_DATA:-$ROOT/../shared/data}
PHOTO=${PHOTO:-$(ls "$DATA"/idrid/images/IDRiD_62.* 2>/dev/null | head -1 || true)}

# shellcheck source=../scripts/env.sh
source "$ROOT/scripts/env.sh"
PY=${PYTHON:-python}
"$PY" -c 'import torch' || { echo "seg.sh: $PY lacks torch" >&2; exit 2; }

if [[ -n ${FOVEA_BIN:-} ]]; then
    FOVEA=$FOVEA_BIN
else
    echo "== cargo build --release -p fovea-cli -p fovea-torch (no-op when up to date)"
    (cd "$ROOT" && cargo build --release -p fovea-cli -p fovea-torch)
    FOVEA=${CARGO_TARGET_DIR:-$ROOT/target}/release/fovea
fi

# Runs a command; prints its output to stderr on failure; sets OUT to its output.
run() {
    OUT=$("$@" 2>&1) || { echo "$OUT" >&2; echo "seg.sh: failed: $*" >&2; exit 1; }
}
# The number after KEY on the last KEY line of OUT.
field() { echo "$OUT" | awk -v k="$1" '$1 == k { v = $2 } END { if (v == "") exit 1; print v }'; }
mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.3f", s / n }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null), $THREADS threads, $DEVICE;" \
    "tiles ${SIZE}x$SIZE, batch $BATCH, $STEPS timed steps x $ROUNDS rounds"

# Fovea sets glibc malloc's mmap threshold, trim threshold and top pad at start
# (crates/fovea-nn/src/malloc.rs); PyTorch runs with glibc's defaults, as its users get it,
# unless PYTORCH_MALLOC=fovea gives it the same settings through glibc's variables.
REF_ENV=()
if [[ ${PYTORCH_MALLOC:-default} == fovea ]]; then
    REF_ENV=(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=268435456)
fi
echo "== PyTorch's malloc: ${PYTORCH_MALLOC:-default} (${REF_ENV[*]:-glibc defaults})"

declare -A R
for model in $MODELS; do
    for ((r = 1; r <= ROUNDS; r++)); do
        for layout in $LAYOUTS; do
            cl=()
            [[ $layout == cl ]] && cl=(--channels-last)
            fovea_side() {
                run "$FOVEA" --threads "$THREADS" bench seg-train --model "$model" --size "$SIZE" \
                    --batch-size "$BATCH" --steps "$STEPS" --device "$DEVICE" "${cl[@]}"
                f=$(field samples_per_s); fp=$(field parameters)
            }
            pytorch_side() {
                run env "${REF_ENV[@]}" "$PY" "$ROOT/bench/seg_train_reference.py" --encoder "$model" --size "$SIZE" \
                    --batch-size "$BATCH" --steps "$STEPS" --device "$DEVICE" --threads "$THREADS" "${cl[@]}"
                p=$(field samples_per_s); pp=$(field parameters)
            }
            # Odd rounds run Fovea first, even rounds PyTorch first (A/B, B/A).
            if ((r % 2)); then fovea_side; pytorch_side; else pytorch_side; fovea_side; fi
            if [[ $fp != "$pp" ]]; then
                echo "seg.sh: unet-$model: Fovea has $fp parameters, PyTorch $pp: not the same model" >&2
                exit 1
            fi
            echo "   unet-$model $layout round $r: fovea $f, pytorch $p samples/s ($fp parameters both; load $(cut -d' ' -f1 /proc/loadavg))"
            R[$model,$layout,f]+=" $f"; R[$model,$layout,p]+=" $p"; R[$model,params]=$fp
            R[$model,$layout,r]+=" $(ratio "$f" "$p")"
        done
    done
done

echo
echo "Segmentation U-Net training step, $DEVICE, $THREADS threads, tiles ${SIZE}x$SIZE, batch $BATCH;"
echo "samples/s, mean over $ROUNDS interleaved rounds of the median of $STEPS steps; the last"
echo "column is the median of the rounds' own ratios (odd rounds run Fovea first, even rounds PyTorch)."
echo
printf '| %-14s | %-10s | %-6s | %-12s | %-12s | %-14s | %-20s |\n' model parameters layout fovea pytorch "fovea/pytorch" "median round ratio"
echo "|----------------|------------|--------|--------------|--------------|----------------|----------------------|"
for model in $MODELS; do
    for layout in $LAYOUTS; do
        # shellcheck disable=SC2086
        f=$(mean ${R[$model,$layout,f]}); p=$(mean ${R[$model,$layout,p]})
        # shellcheck disable=SC2086
        m=$(median ${R[$model,$layout,r]})
        printf '| %-14s | %-10s | %-6s | %-12s | %-12s | %-14s | %-20s |\n' "unet-$model" "${R[$model,params]}" \
            "$layout" "$f" "$p" "$(ratio "$f" "$p")x" "${m}x"
    done
done

if [[ $MAP == 1 ]]; then
    echo
    img=()
    if [[ -n $PHOTO && -f $PHOTO ]]; then img=(--image "$PHOTO"); else echo "(no photograph found: a random 4288x2848 one)"; fi
    # The photograph mapped as `fovea predict` maps it: a trained run's model when SEG_RUN
    # names one, else an untrained small U-Net with configs/seg-cpu.toml's inference
    # (local contrast, half scale, 512-pixel tiles overlapping by 64).
    if [[ -n ${SEG_RUN:-} ]]; then
        run "$FOVEA" --threads "$THREADS" bench seg-map --run "$SEG_RUN" "${img[@]}"
        echo "$OUT" | grep -E '^seg-map'
        echo "whole photograph, $SEG_RUN: $(field seconds) s, peak RSS $(field peak_rss_mib) MiB (goal: < 10 s)"
    else
        for layout in $LAYOUTS; do
            cl=false
            [[ $layout == cl ]] && cl=true
            run "$FOVEA" --threads "$THREADS" bench seg-map --model small --tile "$TILE" --scale "$SCALE" "${img[@]}" --channels-last "$cl"
            echo "$OUT" | grep -E '^seg-map'
            echo "whole photograph, unet-small, $layout: $(field seconds) s, peak RSS $(field peak_rss_mib) MiB (goal: < 10 s)"
        done
    fi
fi
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) (2-core machine: anything above ~0.1 besides this"
echo "run means other work shared the cores; compare ratios, not absolute figures)"
