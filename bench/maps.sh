#!/usr/bin/env bash
# Lesion-map benchmark: time to map one full-size IDRiD photograph (4288x2848) with a
# trained run, dense (the trunk once per tile, windows read off the feature map) against
# window-by-window inference at the same stride, in the same process; their agreement;
# peak memory.
#
#   bench/maps.sh RUN [PHOTO]
#
# RUN: a run folder from `fovea train` (e.g. the CPU configuration's run on the IDRiD
# sample). PHOTO: default the sample's IDRiD_62.jpg (a test image). THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
RUN=${1:?usage: bench/maps.sh RUN [PHOTO]}
DATA=${FOVEA_DATA:-../shared/data}
PHOTO=${2:-$(ls "$DATA"/idrid/images/IDRiD_62.* 2>/dev/null | head -1)}
[ -f "$PHOTO" ] || { echo "no photograph: give one as the second argument" >&2; exit 1; }
BIN=${FOVEA_BIN:-target/release/fovea}
[ -x "$BIN" ] || cargo build --release --locked -p fovea-cli -p fovea-torch
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" --threads "${THREADS:-2}" bench maps --run "$RUN" --image "$PHOTO" --device cpu
