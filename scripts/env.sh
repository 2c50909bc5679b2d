# Sourced by Fovea's scripts: makes libtorch available to the build.
#
# libtorch comes from PyTorch's wheel (pinned below, matched to tch = "=0.26.0"), installed
# once into a virtual environment outside the clone, in ${FOVEA_CACHE:-~/.cache/fovea}, and
# reused by later builds, CI runs and clones. torch-sys finds it through
# LIBTORCH_USE_PYTORCH=1 and that environment's python; the fovea-torch binary (and
# fovea-nn's test executables) find it at run time through an rpath set at link time by
# scripts/libtorch_rpath.rs, the build script of both crates. The `fovea` binary itself
# does not link libtorch: it checks libtorch, then hands deep-learning commands to
# fovea-torch (crates/fovea-cli/src/torch.rs).
FOVEA_TORCH_VERSION="$(cat "$(dirname "${BASH_SOURCE[0]}")/../TORCH_VERSION")"
FOVEA_CACHE="${FOVEA_CACHE:-$HOME/.cache/fovea}"
FOVEA_VENV="$FOVEA_CACHE/torch-$FOVEA_TORCH_VERSION"
if [ ! -f "$FOVEA_VENV/.fovea-complete" ]; then
  echo "fovea: installing PyTorch $FOVEA_TORCH_VERSION (libtorch) into $FOVEA_VENV (about 2 minutes, 4.8 GB, once)" >&2
  mkdir -p "$FOVEA_CACHE"
  rm -rf "$FOVEA_VENV"
  python3 -m venv "$FOVEA_VENV"
  "$FOVEA_VENV/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check "torch==$FOVEA_TORCH_VERSION"
  # Marks the environment whole: an interrupted install is redone, never half-used.
  touch "$FOVEA_VENV/.fovea-complete"
fi
export VIRTUAL_ENV="$FOVEA_VENV"
export PATH="$FOVEA_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
