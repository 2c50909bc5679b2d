#!/usr/bin/env bash
# GPU benchmark, prepared here (no GPU on the build machines) to run on a machine with an
# NVIDIA GPU: `fovea bench train` / `fovea bench infer --device cuda` against the PyTorch
# reference (bench/train_reference.py --device cuda), interleaved A/B/A/B, ratios printed.
# One short run: about 2-3 minutes (most of it process and CUDA start-up); every command
# is capped by `timeout`.
#
#   bench/gpu.sh
#
# What it needs on the GPU machine
# --------------------------------
# 1. The release binaries built here: target/release/fovea and target/release/fovea-torch
#    (or BIN_DIR=folder holding both). Nothing is compiled there unless step 3c applies.
#    The release profile keeps debug info (fovea-torch 92 MB, fovea 43 MB); stripped they
#    are 3.6 MB and 5.2 MB, small enough for any carry:
#        mkdir -p out/gpu-bin && for b in fovea fovea-torch; do
#            strip -o out/gpu-bin/$b target/release/$b; done      # then BIN_DIR=out/gpu-bin
# 2. A Python with torch + torchvision that sees the GPU, for the reference (PYTHON=...,
#    default `python3`). Whatever version it is; the run prints it.
# 3. A libtorch for fovea-torch. fovea-torch was linked against PyTorch 2.13.0's libtorch
#    (tch = "=0.26.0"; torch-sys checks that version at build time) and finds it through a
#    RUNPATH pointing into this machine's ~/.cache/fovea/torch-2.13.0, which the GPU machine
#    lacks. The GPU machine may have no package registry and its own PyTorch (2.11 at last
#    look). In order of preference:
#    a. LIBTORCH_BUNDLE=DIR: the 2.13.0 wheel's libraries carried alongside, in the wheel's
#       own layout, so that libtorch_cuda.so's RPATH ($ORIGIN/../../nvidia/{cu13,cudnn,
#       nccl,cusparselt,nvshmem}/lib) finds the NVIDIA libraries with no further setting:
#           DIR/torch/lib/        libtorch*.so, libc10*.so, libgomp, ...   946 MB
#           DIR/torch/version.py  (fovea's launcher reads the version from it)
#           DIR/nvidia/cu13/lib   libcudart.so.13, libcublas(Lt).so.13, libcufft.so.12,
#                                 libcusparse.so.12, libcurand.so.10, libcufile.so.0,
#                                 libnvrtc.so.13, libnvJitLink.so.13, libcupti.so.13  1.8 GB
#           DIR/nvidia/cudnn/lib  libcudnn*.so.9                                      471 MB
#           DIR/nvidia/nccl/lib   libnccl.so.2                                        227 MB
#           DIR/nvidia/cusparselt/lib libcusparseLt.so.0                              224 MB
#           DIR/nvidia/nvshmem/lib    libnvshmem_host.so.3                             78 MB
#       (the NEEDED list of libtorch_cuda.so and `ldd` of it on
#       ~/.cache/fovea/torch-2.13.0/lib/python3.11/site-packages/torch/lib/libtorch_cuda.so;
#       made with: SITE=~/.cache/fovea/torch-2.13.0/lib/python3.11/site-packages;
#       tar -C "$SITE" -cf libtorch-2.13.0-cu13.tar torch/lib torch/version.py nvidia).
#       About 3.7 GB: too large for a carry limited to tens of MiB, so it needs a shared
#       folder or a copy made beforehand. This wheel is the CUDA 13 build: the GPU's
#       driver must support CUDA 13 (driver >= 580); the script prints the driver version.
#       LD_LIBRARY_PATH=DIR/torch/lib then wins over fovea-torch's RUNPATH (a RUNPATH, not
#       an RPATH: the loader consults LD_LIBRARY_PATH first).
#    b. The local PyTorch, if it is 2.13.0: LD_LIBRARY_PATH=<its torch/lib>.
#    c. The local PyTorch of another version: the binary built against 2.13.0 is not
#       expected to load against it (libtorch has no stable C++ ABI across releases; the
#       script checks with `ldd -r` for undefined symbols and uses it only if all resolve,
#       calling fovea-torch directly because the `fovea` launcher refuses a version other
#       than the pinned one). Otherwise, if cargo can build offline (a cargo registry cache
#       or vendored sources on that machine), it rebuilds fovea-torch against the local
#       PyTorch: LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 cargo build
#       --release --offline -p fovea-torch (tch 0.26's generated bindings may not compile
#       against an older libtorch's headers; that is then the finding). Else it stops and
#       says so.
# 4. libtorch_cuda.so loaded: nothing in fovea-torch calls it by name, so the linker's
#    --as-needed drops it from NEEDED (tch-rs #980). fovea-torch therefore dlopen()s it
#    itself when --device cuda/auto is asked for (fovea_nn::device::load_cuda_backend,
#    through its RUNPATH or LD_LIBRARY_PATH); CPU runs never load the CUDA libraries.
#    A binary older than that is detected below and given LD_PRELOAD instead.
#
# Environment: BIN_DIR, PYTHON, LIBTORCH_BUNDLE (above); SIZES (default "128 64"); STEPS
# (timed steps, default 50: a GPU step is milliseconds); ROUNDS (default 2); CAP (seconds
# per command, default 60).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=${BIN_DIR:-$ROOT/target/release}
PYTHON=${PYTHON:-python3}
SIZES=${SIZES:-"128 64"}
STEPS=${STEPS:-50}
ROUNDS=${ROUNDS:-2}
CAP=${CAP:-60}
T0=$SECONDS

die() { echo "gpu.sh: $*" >&2; exit 1; }
[[ -x $BIN_DIR/fovea-torch ]] || die "no fovea-torch in $BIN_DIR (BIN_DIR=...)"

echo "== $(hostname), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
    echo "   (nvidia-smi not available)"
LOCAL_TORCH=$("$PYTHON" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.version.cuda, torch.cuda.is_available())' 2>/dev/null) ||
    die "$PYTHON lacks torch/torchvision (PYTHON=...)"
echo "== reference: torch, torchvision, CUDA, GPU visible: $LOCAL_TORCH"
[[ ${LOCAL_TORCH##* } == True ]] || die "PyTorch sees no CUDA GPU here (driver? CUDA_VISIBLE_DEVICES?)"
LOCAL_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
LOCAL_VER=${LOCAL_TORCH%% *}
LOCAL_VER=${LOCAL_VER%%+*}

# Undefined symbols / missing libraries of fovea-torch with LD_LIBRARY_PATH=$1.
loads_with() {
    local out
    out=$(LD_LIBRARY_PATH=$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ldd -r "$FT" 2>&1)
    ! grep -q 'not found\|undefined symbol' <<<"$out"
}

# (3) Choose the libtorch.
FT=$BIN_DIR/fovea-torch
LAUNCH=launcher # through `fovea` (checks the version) or `direct` (fovea-torch itself)
if [[ -n ${LIBTORCH_BUNDLE:-} ]]; then
    LIB=$LIBTORCH_BUNDLE/torch/lib
    [[ -f $LIB/libtorch_cuda.so ]] || die "LIBTORCH_BUNDLE=$LIBTORCH_BUNDLE has no torch/lib/libtorch_cuda.so"
    echo "== libtorch: carried bundle $LIB ($(sed -n "s/^__version__ = //p" "$LIBTORCH_BUNDLE/torch/version.py" 2>/dev/null))"
elif [[ $LOCAL_VER == "2.13.0" ]]; then
    LIB=$LOCAL_LIB
    echo "== libtorch: the local PyTorch 2.13.0, $LIB"
else
    LIB=$LOCAL_LIB
    echo "== libtorch: only the local PyTorch $LOCAL_VER (fovea-torch was built for 2.13.0)"
    if loads_with "$LIB"; then
        echo "   fovea-torch resolves every symbol against it: using it as is (not the pinned version)"
        LAUNCH=direct
    elif command -v cargo >/dev/null; then
        echo "   fovea-torch does not load against it; rebuilding against it (offline)"
        # torch-sys runs `python` when VIRTUAL_ENV is set: make that $PYTHON.
        SHIM=$(mktemp -d)
        ln -s "$(command -v "$PYTHON")" "$SHIM/python"
        (cd "$ROOT" && VIRTUAL_ENV=$SHIM PATH="$SHIM:$PATH" \
            LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \
            timeout 400 cargo build --release --offline -p fovea-torch) ||
            die "rebuilding fovea-torch against PyTorch $LOCAL_VER failed (see above)"
        FT=${CARGO_TARGET_DIR:-$ROOT/target}/release/fovea-torch
        LAUNCH=direct
    else
        LD_LIBRARY_PATH=$LIB ldd -r "$FT" 2>&1 | grep 'not found\|undefined symbol' | head -5
        die "fovea-torch does not load against PyTorch $LOCAL_VER and there is no cargo to rebuild; carry the 2.13.0 libraries (LIBTORCH_BUNDLE, see the top of this script)"
    fi
fi
# The library path (and any preload) go to Fovea's commands only, never to the Python
# reference: a PyTorch of another version must not pick up these libraries.
FLIBS=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
loads_with "$LIB" || { LD_LIBRARY_PATH=$FLIBS ldd -r "$FT" | grep 'not found\|undefined symbol' | head -5; die "fovea-torch does not load with LD_LIBRARY_PATH=$LIB"; }
FENV=(env "LD_LIBRARY_PATH=$FLIBS" "FOVEA_TORCH_BIN=$FT")
# libtorch's CUDA half must be loaded although nothing calls it by name. tch's torch-sys
# asks for -ltorch_cuda, but the linker's default --as-needed drops it (tch-rs #980), so a
# fovea-torch linked without `-Wl,--no-as-needed -ltorch` (tch's own build.rs does that)
# does not load it, and libtorch reports no CUDA device. Preload it in that case.
if ! LD_LIBRARY_PATH=$FLIBS ldd "$FT" | grep -q 'libtorch_cuda.so' && ! grep -q "CUDA backend could not be loaded" "$FT"; then
    echo "== fovea-torch does not load libtorch_cuda.so by itself (linked --as-needed): LD_PRELOAD=$LIB/libtorch_cuda.so"
    FENV+=("LD_PRELOAD=$LIB/libtorch_cuda.so")
    LAUNCH=direct # preload into fovea-torch only, not into the launcher as well
fi
if [[ $LAUNCH == launcher && -x $BIN_DIR/fovea ]]; then
    FOVEA=("${FENV[@]}" "$BIN_DIR/fovea")
else
    FOVEA=("${FENV[@]}" "$FT")
fi
echo "== fovea: ${FOVEA[*]}"
echo "   (fovea-torch resolves libtorch_cpu.so to $(LD_LIBRARY_PATH=$FLIBS ldd "$FT" | awk '/libtorch_cpu.so/ {print $3}'))"

# Runs a command under the cap; prints the number after KEY on its last KEY line.
measure() {
    local key=$1
    shift
    local out
    out=$(timeout "$CAP" "$@" 2>&1) || { echo "$out" | tail -5 >&2; die "failed or over ${CAP}s: $*"; }
    echo "$out" | awk -v k="$key" '$1 == k { v = $2 } END { if (v == "") exit 1; print v }'
}
mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.1f", s / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

declare -A R
for size in $SIZES; do
    for ((r = 1; r <= ROUNDS; r++)); do
        ft=$(measure samples_per_s "${FOVEA[@]}" --threads 2 bench train --model resnet18 \
            --size "$size" --batch-size 32 --steps "$STEPS" --device cuda) || exit 1
        pt=$(measure train_samples_per_s "$PYTHON" "$ROOT/bench/train_reference.py" --what train \
            --size "$size" --batch-size 32 --steps "$STEPS" --device cuda) || exit 1
        pc=$(measure train_samples_per_s "$PYTHON" "$ROOT/bench/train_reference.py" --what train \
            --size "$size" --batch-size 32 --steps "$STEPS" --device cuda --channels-last) || exit 1
        fin=$(measure samples_per_s "${FOVEA[@]}" --threads 2 bench infer --model resnet18 \
            --size "$size" --batch-size 64 --steps "$STEPS" --device cuda) || exit 1
        pin=$(measure infer_samples_per_s "$PYTHON" "$ROOT/bench/train_reference.py" --what infer \
            --size "$size" --infer-batch-size 64 --steps "$STEPS" --device cuda) || exit 1
        echo "   size $size round $r: train fovea $ft, pytorch $pt, pytorch-cl $pc;" \
            "infer fovea $fin, pytorch $pin  ($((SECONDS - T0)) s so far)"
        R[$size,ft]+=" $ft"; R[$size,pt]+=" $pt"; R[$size,pc]+=" $pc"
        R[$size,fi]+=" $fin"; R[$size,pi]+=" $pin"
    done
done

echo
echo "ResNet-18 on cuda, f32, train batch 32, infer batch 64; samples/s, mean over $ROUNDS"
echo "interleaved rounds of the median of $STEPS steps; ratios = Fovea / PyTorch $LOCAL_VER."
printf '| %-4s | %-11s | %-13s | %-16s | %-6s | %-8s | %-11s | %-13s | %-6s |\n' \
    size "fovea train" "pytorch train" "pytorch train CL" ratio "ratio CL" "fovea infer" \
    "pytorch infer" ratio
echo "|------|-------------|---------------|------------------|--------|----------|-------------|---------------|--------|"
for size in $SIZES; do
    # shellcheck disable=SC2086
    ft=$(mean ${R[$size,ft]}); pt=$(mean ${R[$size,pt]}); pc=$(mean ${R[$size,pc]})
    # shellcheck disable=SC2086
    fin=$(mean ${R[$size,fi]}); pin=$(mean ${R[$size,pi]})
    printf '| %-4s | %-11s | %-13s | %-16s | %-6s | %-8s | %-11s | %-13s | %-6s |\n' \
        "$size" "$ft" "$pt" "$pc" "$(ratio "$ft" "$pt")x" "$(ratio "$ft" "$pc")x" \
        "$fin" "$pin" "$(ratio "$fin" "$pin")x"
done
echo "total $((SECONDS - T0)) s"
