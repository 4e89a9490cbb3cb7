#!/usr/bin/env bash
# The GPU path on a machine with an NVIDIA GPU: a venv with CUDA torch, `pytest -m gpu`, training samples/s of
# both variants at the official sizes on CPU and GPU, and a 1M-item FAISS index built and searched on the GPU
# (when faiss-gpu installs). Run from the repository root:
#
#     bash benchmarks/gpu_check.sh [--venv DIR] [--steps N] [--batch B] [--items N] [--dim D] [--skip-install]
#
# The venv (default .venv-gpu) is its own: `make install` pins the CPU torch wheel in .venv, this one gets the
# CUDA build of the same version from PyPI's default index, and faiss-gpu in place of faiss-cpu.
set -euo pipefail

TORCH_VERSION=2.13.0
FAISS_VERSION=1.15.1
VENV=.venv-gpu
STEPS=20
BATCH=32
ITEMS=1000000
DIM=256
INSTALL=1

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --venv) VENV=${2:?--venv needs a folder}; shift 2 ;;
        --steps) STEPS=${2:?--steps needs a number}; shift 2 ;;
        --batch) BATCH=${2:?--batch needs a number}; shift 2 ;;
        --items) ITEMS=${2:?--items needs a number}; shift 2 ;;
        --dim) DIM=${2:?--dim needs a number}; shift 2 ;;
        --skip-install) INSTALL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument '$1'; see --help." >&2; exit 2 ;;
    esac
done
for value in "$STEPS" "$BATCH" "$ITEMS" "$DIM"; do
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check.sh: '$value' is not a positive whole number." >&2; exit 2; }
done

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check.sh: no NVIDIA GPU here (nvidia-smi is missing or lists none); run it on a machine with one." >&2
    exit 3
fi
[[ -f pyproject.toml && -d src/beatdance ]] || { echo "gpu_check.sh: run it from the beatdance repository root." >&2; exit 2; }
nvidia-smi -L

PY="$VENV/bin/python"
if [[ $INSTALL == 1 ]]; then
    echo "== venv $VENV: torch $TORCH_VERSION (CUDA build) and beatdance"
    [[ -x "$PY" ]] || python3 -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet "torch==$TORCH_VERSION"
    "$PY" -m pip install --quiet -e '.[test,pretrained,scale]'
fi
"$PY" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check.sh: torch {torch.__version__} in this venv sees no CUDA GPU (a CPU build?); "
             "reinstall torch from the CUDA index of your driver, e.g. --index-url https://download.pytorch.org/whl/cu128")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
EOF

echo "== pytest -m gpu"
HF_HUB_OFFLINE=1 MPLBACKEND=Agg "$PY" -m pytest -m gpu -q tests

echo "== training samples/s at the official sizes (batch $BATCH, $STEPS steps after a warm-up one)"
"$PY" - "$STEPS" "$BATCH" <<'EOF'
import sys
sys.path.insert(0, "benchmarks")
from train_speed import train_speed  # noqa: E402

steps, batch = int(sys.argv[1]), int(sys.argv[2])
print("| variant | CPU samples/s | GPU samples/s |\n|---|---|---|")
for variant, name in (("official", "official"), ("temporal", "temporal (the default recipe's variant)")):
    cpu, gpu = (train_speed(variant, steps=steps, batch=batch, device=d) for d in ("cpu", "cuda"))
    print(f"| {name} | {cpu:.1f} | {gpu:.1f} |")
EOF

echo "== FAISS on the GPU: $ITEMS items of dimension $DIM"
if [[ $INSTALL == 1 ]]; then
    "$PY" -m pip uninstall --quiet --yes faiss-cpu >/dev/null 2>&1 || true
    "$PY" -m pip install --quiet "faiss-gpu==$FAISS_VERSION" \
        || echo "faiss-gpu==$FAISS_VERSION did not install; the index check below is skipped."
fi
"$PY" - "$ITEMS" "$DIM" <<'EOF'
import sys
import time
import faiss
import numpy as np

items, dim = int(sys.argv[1]), int(sys.argv[2])
if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
    print("skipped: this faiss has no GPU support (faiss-gpu did not install).")
    sys.exit(0)
rng = np.random.default_rng(0)
x = rng.standard_normal((items, dim), dtype=np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
queries = x[rng.choice(items, 1000, replace=False)]
res = faiss.StandardGpuResources()
print("| index | build s | 1000 queries s | recall@1 of the query itself |\n|---|---|---|---|")
for factory, nprobe in (("Flat", None), ("IVF4096,Flat", 32)):
    started = time.perf_counter()
    index = faiss.index_cpu_to_gpu(res, 0, faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT))
    if not index.is_trained:
        index.train(x[rng.choice(items, min(items, 200_000), replace=False)])
    index.add(x)
    built_s = time.perf_counter() - started
    if nprobe:
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    started = time.perf_counter()
    _, found = index.search(queries, 10)
    search_s = time.perf_counter() - started
    hit = float(np.mean(np.all(x[found[:, 0]] == queries, axis=1)))
    print(f"| {factory}{f' nprobe {nprobe}' if nprobe else ''} | {built_s:.2f} | {search_s:.3f} | {hit:.3f} |")
EOF
echo "gpu_check.sh: done."
