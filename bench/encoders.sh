#!/usr/bin/env bash
# Whole-image encoders, forward and backward (bench/README.md, "Encoders"): Fovea's
# ResNet-18 trunk and Swin-T (`fovea bench encoders`) against torchvision's resnet18 and
# swin_t (bench/encoders_reference.py, the same measurement), interleaved A/B/A/B in one
# sitting at the encoder's input size; prints samples/s and the ratio Fovea / PyTorch.
#
#   bench/encoders.sh
#
# Environment: SIZE (default 256), BATCH (default 4), STEPS (default 5), ROUNDS (default
# 2), THREADS (default 2), DEVICE (default cpu), FOVEA_BIN (a fovea binary instead of
# building), PYTHON (a python with torch + torchvision; default the venv of scripts/env.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE=${SIZE:-256}
BATCH=${BATCH:-4}
STEPS=${STEPS:-5}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}

# shellcheck source=../scripts/env.sh
source "$ROOT/scripts/env.sh"
PY=${PYTHON:-python}
"$PY" -c 'import torch, torchvision' || { echo "encoders.sh: $PY lacks torch/torchvision" >&2; exit 2; }
if [[ -n ${FOVEA_BIN:-} ]]; then
    FOVEA=$FOVEA_BIN
else
    (cd "$ROOT" && cargo build --release -p fovea-cli -p fovea-torch)
    FOVEA=${CARGO_TARGET_DIR:-$ROOT/target}/release/fovea
fi

value() { awk -v k="$1" '$1 == k { v = $2 } END { print v }'; }
declare -A F P
for r in $(seq 1 "$ROUNDS"); do
    fo=$("$FOVEA" --threads "$THREADS" bench encoders --size "$SIZE" --batch-size "$BATCH" --steps "$STEPS" --device "$DEVICE")
    po=$("$PY" "$ROOT/bench/encoders_reference.py" --size "$SIZE" --batch-size "$BATCH" --steps "$STEPS" --threads "$THREADS" --device "$DEVICE")
    for m in resnet18 swin_t; do
        F[$m]="${F[$m]:-} $(echo "$fo" | value "${m}_samples_per_s")"
        P[$m]="${P[$m]:-} $(echo "$po" | value "${m}_samples_per_s")"
    done
    echo "round $r: fovea $(echo "$fo" | grep samples_per_s | tr '\n' ' ')| pytorch $(echo "$po" | grep samples_per_s | tr '\n' ' ')"
done
best() { tr ' ' '\n' | awk 'NF { if ($1 > m) m = $1 } END { print m }'; }
echo "encoders at ${SIZE}x${SIZE}, batch $BATCH, $THREADS threads, $DEVICE (best of $ROUNDS rounds, samples/s, forward+backward):"
for m in resnet18 swin_t; do
    f=$(echo "${F[$m]}" | best)
    p=$(echo "${P[$m]}" | best)
    echo "  $m: fovea $f, pytorch $p, ratio $(awk -v f="$f" -v p="$p" 'BEGIN { printf "%.2f", f / p }')"
done
f_s=$(echo "${F[swin_t]}" | best)
f_r=$(echo "${F[resnet18]}" | best)
echo "  swin_t / resnet18 (fovea): $(awk -v a="$f_s" -v b="$f_r" 'BEGIN { printf "%.2f", a / b }')"
