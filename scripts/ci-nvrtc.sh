#!/usr/bin/env bash
# Installs NVRTC from PyPI (the `nvidia-cuda-nvrtc` wheel: no GPU, driver or toolkit needed) and
# prints the line that points resnetc's CUDA tests at it:
#
#   eval "$(bash scripts/ci-nvrtc.sh)"      # sets RESNETC_NVRTC=/.../libnvrtc.so.13
#
# Everything but that `export` line goes to stderr. An installed wheel is kept when it already
# satisfies the requirement (torch's CUDA wheels bring one). Override the requirement with
# RESNETC_NVRTC_PIP_SPEC (e.g. 'nvidia-cuda-nvrtc-cu12==12.9.86' for CUDA 12) and the interpreter
# with PYTHON.
set -euo pipefail

python="${PYTHON:-python3}"
spec="${RESNETC_NVRTC_PIP_SPEC:-nvidia-cuda-nvrtc>=13.0,<14}"

"$python" -m pip install --quiet --disable-pip-version-check "$spec" >&2

lib="$("$python" - <<'EOF'
import importlib.metadata as md
for dist in ("nvidia-cuda-nvrtc", "nvidia-cuda-nvrtc-cu12", "nvidia-cuda-nvrtc-cu11"):
    try:
        files = md.files(dist) or []
    except md.PackageNotFoundError:
        continue
    libs = sorted(str(f.locate()) for f in files if f.name.startswith("libnvrtc.so"))
    if libs:
        print(libs[-1])
        break
EOF
)"

if [[ -z "$lib" || ! -f "$lib" ]]; then
    echo "ci-nvrtc.sh: installed '$spec' but found no libnvrtc.so in it" >&2
    exit 1
fi
echo "ci-nvrtc.sh: NVRTC at $lib" >&2
printf 'export RESNETC_NVRTC=%q\n' "$lib"
