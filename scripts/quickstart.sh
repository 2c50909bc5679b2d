#!/usr/bin/env bash
# Sets Fovea up and runs its main job on built-in synthetic data: synthetic fundus
# photographs -> patch store -> composition -> balanced training subset -> a trained
# classifier -> its evaluation on the test split -> lesion maps of the test photographs,
# scored per pixel -> report.html.
# Usage: scripts/quickstart.sh [OUT_DIR]   (default: out/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch (PyTorch's wheel in a cached virtual environment) for the deep-learning crates.
source scripts/env.sh
OUT=${1:-out/quickstart}
cargo build --release -p fovea-cli -p fovea-torch
F=target/release/fovea
rm -rf "$OUT/run" "$OUT/maps" "$OUT/eval" "$OUT/subset.csv"
$F synth --out "$OUT/data" --images 12 --seed 0 --size 768x512 --force
$F extract --dataset "$OUT/data" --out "$OUT/store" --patch-size 64 --stride 32 \
  --lesion-per-component 1 --seed 0 --force
$F stats "$OUT/store"
$F balance "$OUT/store" --policy report --healthy-ratio 2 --seed 0 --out "$OUT/subset.csv"
$F train --store "$OUT/store" --out "$OUT/run" --model cnn --epochs 4 --batch-size 32 \
  --subset "$OUT/subset.csv" --seed 0 --device cpu
$F eval --run "$OUT/run" --store "$OUT/store" --split test --out "$OUT/eval" --device cpu
# Lesion maps (heatmaps, overlays, regions) of two photographs, then pixel-level AUPR over
# the test split, then one self-contained HTML page about it all.
$F predict --run "$OUT/run" "$OUT"/data/images/SYN_0001.jpg "$OUT"/data/images/SYN_0002.jpg \
  --out "$OUT/maps" --device cpu
$F eval-maps --run "$OUT/run" --dataset "$OUT/data" --split test --out "$OUT/eval" --device cpu
$F report --run "$OUT/run" --eval "$OUT/eval" --maps "$OUT/eval/maps"
echo "done: dataset $OUT/data, patch store $OUT/store, run $OUT/run, evaluation $OUT/eval,"
echo "      maps $OUT/maps and $OUT/eval/maps, report $OUT/run/report.html"
