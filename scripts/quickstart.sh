#!/usr/bin/env bash
# Sets Fovea up and runs its main job on built-in synthetic data: synthetic fundus
# photographs -> patch store -> composition -> balanced training subset.
# Usage: scripts/quickstart.sh [OUT_DIR]   (default: out/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch (PyTorch's wheel in a cached virtual environment) for the deep-learning crates.
source scripts/env.sh
OUT=${1:-out/quickstart}
cargo build --release -p fovea-cli -p fovea-torch
F=target/release/fovea
$F synth --out "$OUT/data" --images 12 --seed 0 --size 768x512 --force
$F extract --dataset "$OUT/data" --out "$OUT/store" --patch-size 64 --stride 32 \
  --lesion-per-component 1 --seed 0 --force
$F stats "$OUT/store"
$F balance "$OUT/store" --policy report --healthy-ratio 2 --seed 0 --out "$OUT/subset.csv"
echo "done: dataset in $OUT/data, patch store in $OUT/store, training subset $OUT/subset.csv"
