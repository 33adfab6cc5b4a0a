#!/usr/bin/env bash
# Install blastscope with everything it needs.
# A torch that is already installed (a CUDA build, say) is kept; otherwise the CPU build
# torch==2.13.0 is installed first, so pip never resolves "torch" to a multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "torch==2.13.0"
fi
"$PY" -m pip install --quiet -e ".[all]"
