#!/usr/bin/env bash
# The test suite (the README's second command). Tests that need the real IDRiD sample read
# it from ../shared/data (or $FOVEA_DATA); they skip with a message where it is absent,
# except under CI=true, where a missing sample fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch (PyTorch's wheel in a cached virtual environment) for the deep-learning crates.
source scripts/env.sh
cargo test --workspace --locked "$@"
