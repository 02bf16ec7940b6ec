#!/usr/bin/env bash
# One prepared GPU check (see bench/gpu_check.py): real-sized SD 1.5, SDXL, SVD, LTX, Wan and
# GPT-2 124M with random weights, offline, one table; at most 9 minutes on one H100.
#   bash bench/gpu_check.sh              # on the GPU machine
#   bash bench/gpu_check.sh --cpu-smoke  # the same code, tiny configs, on the CPU (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 REELWORKS_PROGRESS=0
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" bench/gpu_check.py "$@"
