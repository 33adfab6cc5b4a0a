#!/usr/bin/env bash
# The GPU check of issue 18, for a machine with a CUDA GPU (not run in CI, which has none).
# Installs blastscope over the machine's own CUDA torch, runs the tests marked for CUDA, the
# benchmark, and one fold of the default recipe at 350 px for a few epochs on the built-in
# synthetic set, with and without mixed precision; every figure goes to $OUT/gpu-check.txt
# (default ./gpu-check). Meant to finish in under 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
LOG="$OUT/gpu-check.txt"
: > "$LOG"
say() { echo "== $*" | tee -a "$LOG"; }
say "machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
say "install (keeps the machine's torch)"
pip install -q -e ".[all]" 2>&1 | tail -3 | tee -a "$LOG"
say "CUDA tests (marked gpu: training on the GPU, CPU prediction of its weights, a seeded deterministic run repeated, GPU vs CPU training, 2 GPUs with NCCL where two exist)"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs -m gpu tests/ 2>&1 | tail -8 | tee -a "$LOG"
say "one fold, default recipe sdct_auxnet, 350 px, 5 epochs, float32 then mixed precision"
for amp in off auto; do
  /usr/bin/time -f "amp $amp: %e s wall" timeout 240 blastscope cv sdct_auxnet --device cuda --fold 1 \
      --set train.epochs=5 --set train.amp=$amp --out "$OUT/run-$amp" 2>&1 | tail -4 | tee -a "$LOG"
  python3 -c "
import json, pathlib
p = pathlib.Path('$OUT/run-$amp/arms/sdct_net/fold_1/fold.json')
if p.exists():
    i = json.loads(p.read_text()); print('amp $amp: best epoch', i['best_epoch'], 'train s', round(i['train_seconds'], 1))
" 2>&1 | tee -a "$LOG"
done
say "agreement of held-out predictions, float32 vs mixed precision"
python3 - <<'PY' 2>&1 | tee -a "$LOG"
import pandas as pd, pathlib, os
out = os.environ.get("OUT", "gpu-check")
a, b = (pathlib.Path(out) / f"run-{m}/arms/sdct_net/fold_1/predictions.csv" for m in ("off", "auto"))
if a.exists() and b.exists():
    x, y = pd.read_csv(a), pd.read_csv(b)
    print("same label share", float((x["pred"].to_numpy() == y["pred"].to_numpy()).mean()), "of", len(x))
PY
say "benchmark: GPU cases (matmul roofline, training step bf16 vs float32, DCT paths, data waiting, inference) and the protocol estimate"
timeout 300 blastscope bench --only training --only inference --only gpu --only protocol --json "$OUT/bench.json" 2>&1 \
    | tail -40 | tee -a "$LOG"
say "done: $LOG"
