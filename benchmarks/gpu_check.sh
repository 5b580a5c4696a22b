#!/usr/bin/env bash
# The GPU check for one CUDA machine with no network (see docs/benchmarks.md, "GPU check").
#
#   benchmarks/gpu_check.sh --download   # HERE, with network: fetch the wheels it needs into .whl/ (gitignored)
#   benchmarks/gpu_check.sh              # THERE, from the repo root: install .whl/ offline, run, write $OUT
#   benchmarks/gpu_check.sh --dry-run    # anywhere: the same code on the CPU with tiny sizes (CI runs it)
#
# The GPU machine's Python (3.12, CUDA torch, onnxruntime, numpy, scipy, pyyaml, rich, typer) lacks what
# floodwatch's mapping needs: rasterio (GDAL inside the wheel), pyproj, shapely, pydantic. `--download`
# fetches exactly those (benchmarks/gpu_wheels.txt) as manylinux x86-64 wheels for CPython 3.12; carry
# .whl along (about 40 MB). Results: $OUT/gpu_check.json and $OUT/gpu_check.md (OUT defaults to ./gpu_check_out).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--download" ]]; then
    $PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
    exit 0
fi

if [[ "${1:-}" != "--dry-run" ]]; then
    if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu_check_site .whl/*.whl
        export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
export PYTHONUNBUFFERED=1
exec $PY benchmarks/gpu_check.py "$@"
