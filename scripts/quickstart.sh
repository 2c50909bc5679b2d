#!/usr/bin/env bash
# Sets Fovea up and runs its main job on built-in synthetic data: synthetic fundus
# photographs -> patch store -> composition -> balanced training subset -> a trained
# classifier -> its evaluation on the test split.
# Usage: scripts/quickstart.sh [OUT_DIR]   (default: out/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch (PyTorch's wheel in a cached virtual environment) for the deep-learning crates.
source scripts/env.sh
OUT=${1:-out/quickstart}
cargo build --release -p fovea-cli -p fovea-torch
F=target/release/fovea
rm -rf "$OUT/run"
$F synth --out "$OUT/data" --images 12 --seed 0 --size 768x512 --force
$F extract --dataset "$OUT/data" --out "$OUT/store" --patch-size 64 --stride 32 \
  --lesion-per-component 1 --seed 0 --force
$F stats "$OUT/store"
$F balance "$OUT/store" --policy report --healthy-ratio 2 --seed 0 --out "$OUT/subset.csv"
$F train --store "$OUT/store" --out "$OUT/run" --model cnn --epochs 4 --batch-size 32 \
  --subset "$OUT/subset.csv" --seed 0 --device cpu
$F eval --run "$OUT/run" --store "$OUT/store" --split test --out "$OUT/eval" --device cpu
echo "done: dataset $OUT/data, patch store $OUT/store, run $OUT/run, evaluation $OUT/eval"
