#!/usr/bin/env bash
# Extraction benchmark (see bench/README.md): Fovea's decode-only time, full extraction
# time and their ratio, against a plain Python (PIL + numpy) reference on the same data,
# whose index is checked equal to Fovea's.
#
#   bench/extract.sh [DATASET]
#
# DATASET defaults to $FOVEA_DATA/idrid, else ../shared/data/idrid beside the repository.
# Environment: P, S (patch size and stride, default 128 and 128); FOVEA_CACHE (where the
# Python virtual environment lives, default ~/.cache/fovea); BENCH_TMP (a folder for the
# stores and logs, default a fresh temporary folder, removed at the end unless KEEP=1);
# FOV_TOL (fov_frac tolerance of the main comparison, default 0.01, see README);
# RUNS=N runs Fovea's benchmark N times and reports its least disturbed run (default 1);
# STRICT=0 skips the decoder-independent check (default 1); FOVEA_BIN (use this fovea
# binary instead of building one).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ $# -ge 1 ]]; then
    DATA=$1
elif [[ -n ${FOVEA_DATA:-} ]]; then
    DATA=$FOVEA_DATA/idrid
else
    DATA=$ROOT/../shared/data/idrid
fi
[[ -f $DATA/manifest.csv ]] || { echo "extract.sh: no manifest.csv in $DATA" >&2; exit 2; }
DATA=$(cd "$DATA" && pwd)
P=${P:-128}
S=${S:-128}
FOV_TOL=${FOV_TOL:-0.01}
STRICT=${STRICT:-1}

# (a) Python environment, outside the clone.
CACHE=${FOVEA_CACHE:-$HOME/.cache/fovea}
VENV=$CACHE/bench-venv
PY=$VENV/bin/python
if ! "$PY" -c 'import PIL, numpy' 2>/dev/null; then
    echo "== creating $VENV (pillow, numpy)"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    "$PY" -m pip install --quiet pillow numpy
fi

# (b) Fovea (FOVEA_BIN=path skips the build and uses that binary).
if [[ -n ${FOVEA_BIN:-} ]]; then
    FOVEA=$FOVEA_BIN
else
    echo "== cargo build --release -p fovea-cli"
    (cd "$ROOT" && cargo build --release -p fovea-cli)
    FOVEA=${CARGO_TARGET_DIR:-$ROOT/target}/release/fovea
fi

if [[ -n ${BENCH_TMP:-} ]]; then
    TMP=$BENCH_TMP
    mkdir -p "$TMP"
else
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/fovea-bench.XXXXXX")
fi
cleanup() {
    if [[ ${KEEP:-0} != 1 ]]; then
        rm -rf "$TMP/store" "$TMP/.store.partial" "$TMP/ref_index.csv" "$TMP/strict_index.csv" \
            "$TMP"/*.out "$TMP"/*.time
        [[ -n ${BENCH_TMP:-} ]] || rm -rf "$TMP"
    fi
}
trap cleanup EXIT

TIMEV=()
if /usr/bin/time -v true >/dev/null 2>&1; then
    TIMEV=(/usr/bin/time -v -o)
fi
# Runs "$@" with its stdout in $1.out (and shown), and /usr/bin/time -v's report in $1.time.
timed() {
    local name=$1
    shift
    if [[ ${#TIMEV[@]} -gt 0 ]]; then
        "${TIMEV[@]}" "$TMP/$name.time" "$@" | tee "$TMP/$name.out"
    else
        "$@" | tee "$TMP/$name.out"
        : >"$TMP/$name.time"
    fi
}
# value KEY FILE: the first number after "KEY" at the start of a line.
value() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
# Peak RSS of the whole process in MiB from time -v, else the fallback given.
rss_mib() {
    local kb
    kb=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$1")
    if [[ -n $kb ]]; then awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }'; else echo "$2"; fi
}


# (c) Fovea: decode only, then the full extraction, in one run (RUNS times; the run with
# the least decode + extraction time is reported: other processes only ever add time).
RUNS=${RUNS:-1}
best=
for ((i = 1; i <= RUNS; i++)); do
    echo "== [$i/$RUNS] load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'): fovea bench extract --dataset $DATA --patch-size $P --stride $S --out $TMP/store"
    rm -rf "$TMP/store"
    timed "fovea$i" "$FOVEA" bench extract --dataset "$DATA" --patch-size "$P" --stride "$S" --out "$TMP/store"
    total=$(awk -v a="$(value decode_s "$TMP/fovea$i.out")" -v b="$(value extract_s "$TMP/fovea$i.out")" 'BEGIN { print a + b }')
    if [[ -z $best ]] || awk -v t="$total" -v b="$best_total" 'BEGIN { exit !(t < b) }'; then
        best=$i
        best_total=$total
    fi
done
F=$TMP/fovea$best.out
decode_s=$(value decode_s "$F")
extract_s=$(value extract_s "$F")
ratio=$(value ratio_extract_to_decode "$F")
decode_cpu_s=$(value decode_cpu_s "$F")
extract_cpu_s=$(value extract_cpu_s "$F")
cpu_ratio=$(value cpu_ratio_extract_to_decode "$F")
write_s=$(value write_s "$F")
write_direct=$(grep -o 'direct I/O: [a-z]*' "$F" | head -1 | cut -d' ' -f3)
fovea_rss=$(rss_mib "$TMP/fovea$best.time" "$(value peak_rss_mib "$F")")
if ((RUNS > 1)); then
    echo "== runs (decode_s, extract_s): $(for ((i = 1; i <= RUNS; i++)); do printf '(%s, %s) ' "$(value decode_s "$TMP/fovea$i.out")" "$(value extract_s "$TMP/fovea$i.out")"; done)-> run $best"
fi

# (d) The plain Python reference, same data and settings.
echo "== load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'): python bench/extract_reference.py (single process, PIL + numpy)"
timed python "$PY" "$ROOT/bench/extract_reference.py" --dataset "$DATA" --patch-size "$P" \
    --stride "$S" --out "$TMP/ref_index.csv"
py_s=$(value python_wall_s "$TMP/python.out")
py_decode_s=$(value python_decode_s "$TMP/python.out")
py_rss=$(rss_mib "$TMP/python.time" "$(value python_peak_rss_mib "$TMP/python.out")")

# (e) Same patches, labels, counts and black flags.
echo "== compare indexes"
status=0
"$PY" "$ROOT/bench/compare_index.py" "$TMP/ref_index.csv" "$TMP/store/index.csv" \
    --tol "$FOV_TOL" | tee "$TMP/compare.out" || status=1
if [[ $STRICT == 1 ]]; then
    echo "== strict check: reference on Fovea's decoded pixels (not timed)"
    "$PY" "$ROOT/bench/extract_reference.py" --dataset "$DATA" --patch-size "$P" --stride "$S" \
        --out "$TMP/strict_index.csv" --pixels-from "$TMP/store" >/dev/null
    "$PY" "$ROOT/bench/compare_index.py" "$TMP/strict_index.csv" "$TMP/store/index.csv" \
        --tol 1e-3 | tee "$TMP/strict.out" || status=1
fi

# (f) Summary.
speedup=$(awk -v a="$py_s" -v b="$extract_s" 'BEGIN { printf "%.2f", a / b }')
goal() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN { ok = (op == "<=") ? v <= g : v >= g; print ok ? "met" : "MISSED" }'; }
printf '\n== summary (%s, P=%s S=%s, %s cores)\n' "$DATA" "$P" "$S" "$(nproc 2>/dev/null || echo '?')"
printf '%-36s %10s\n' "decode only (Fovea), s" "$decode_s"
printf '%-36s %10s\n' "extraction (Fovea), s" "$extract_s"
printf '%-36s %10s   goal <= 1.3: %s\n' "ratio extraction / decode" "$ratio" "$(goal "$ratio" '<=' 1.3)"
printf '%-36s %10s   (CPU s, all threads: decode %s, extraction %s)\n' "CPU-time ratio" "${cpu_ratio:-n/a}" "${decode_cpu_s:-n/a}" "${extract_cpu_s:-n/a}"
if [[ -n $write_s ]]; then
    floor=$(awk -v a="$write_s" -v b="$decode_s" 'BEGIN { printf "%.3f", a / b }')
    printf '%-36s %10s   (the store'"'"'s bytes on disk written alone, direct I/O %s: the disk'"'"'s floor, %s x decode)\n' "write only (Fovea), s" "$write_s" "${write_direct:-?}" "$floor"
fi
printf '%-36s %10s\n' "Fovea peak RSS, MiB" "$fovea_rss"
printf '%-36s %10s   (of which PIL decoding %s s)\n' "Python reference, s" "$py_s" "$py_decode_s"
printf '%-36s %10s\n' "Python peak RSS, MiB" "$py_rss"
printf '%-36s %10s   goal >= 4: %s\n' "speed-up (Python / Fovea extraction)" "${speedup}x" "$(goal "$speedup" '>=' 4)"
printf '%-36s %s\n' "index comparison" "$(head -c 200 "$TMP/compare.out" | head -1)"
[[ $STRICT == 1 ]] && printf '%-36s %s\n' "strict (same decoded pixels)" "$(head -1 "$TMP/strict.out")"
[[ ${KEEP:-0} == 1 ]] && echo "kept: $TMP"
exit $status
