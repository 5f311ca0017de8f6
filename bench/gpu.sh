#!/usr/bin/env bash
# GPU checks and figures for classviz on one NVIDIA GPU (issue: CUDA for real).
# Run on the GPU machine from the repository root, with target/release/classviz
# and weights/ carried over. Writes every figure to $OUT/gpu.json (or
# ./gpu-results.json) and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${OUT:-.}/gpu.json
TORCH_PY=${TORCH_PY:-/opt/torch/.venv/bin/python3}
BIN=target/release/classviz
export LD_LIBRARY_PATH=$("$TORCH_PY" -c 'import torch,os;print(os.path.dirname(torch.__file__)+"/lib")')
work=$(mktemp -d)

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$work/gpu.txt"
"$TORCH_PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$work/gpu.txt"

seconds() { local start=$(date +%s.%N); "$@" > "$work/last.out"; echo "$(date +%s.%N) - $start" | bc; }

# 1. auto picks CUDA; class 100 is top-1.
t_one=$(seconds $BIN --class 100 --iters 150 --json --quiet --force --out "$work/one")
grep -q '"class":100' "$work/last.out"
top1=$("$TORCH_PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["top5"][0]["class"]==100)' "$work/last.out")
device=$(grep -o '"device":"[^"]*"' "$work/one/summary.jsonl" | head -1)

# 2. CPU/GPU parity on one class, same seed: final logit and top-1.
$BIN --class 130 --iters 150 --json --quiet --force --device cpu --out "$work/cpu" > "$work/cpu.json"
$BIN --class 130 --iters 150 --json --quiet --force --device cuda --out "$work/cuda" > "$work/cuda.json"

# 3. --class all at several batch sizes, wall time including model load.
declare -A all
for b in 32 64 128 256; do
  all[$b]=$(seconds $BIN --class all --iters 150 --batch $b --quiet --force --json --out "$work/all$b")
  echo "batch $b: ${all[$b]} s"
done
all_top1=$("$TORCH_PY" -c 'import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; print(sum(r["top5"][0]["class"]==r["class"] for r in rows), len(rows))' "$work/last.out")

# 4. natural preset and smoothgrad.
t_nat=$(seconds $BIN --class 9,22,76,145,288,309,386,430,563,779,850,963 --preset natural --quiet --force --json --out "$work/nat")
t_sal=$(seconds $BIN saliency --image tests/data/coffee.png --method smoothgrad --json --out "$work/sal")

"$TORCH_PY" - "$RESULTS" "$work" "$t_one" "$top1" "$device" "$t_nat" "$t_sal" "$all_top1" "${all[32]}" "${all[64]}" "${all[128]}" "${all[256]}" <<'PY'
import json, sys
out, work, t_one, top1, device, t_nat, t_sal, all_top1, *alls = sys.argv[1:]
cpu = json.load(open(f"{work}/cpu.json")); cuda = json.load(open(f"{work}/cuda.json"))
figures = {
    "gpu": open(f"{work}/gpu.txt").read().strip().splitlines(),
    "class_100_seconds": float(t_one), "class_100_top1": top1 == "True", "auto_device": device,
    "parity_logit_cpu": cpu["logit"], "parity_logit_cuda": cuda["logit"],
    "parity_top1_same": cpu["top5"][0]["class"] == cuda["top5"][0]["class"],
    "all_classes_seconds_by_batch": dict(zip(["32", "64", "128", "256"], map(float, alls))),
    "all_classes_top1": all_top1,
    "natural_12_classes_seconds": float(t_nat), "smoothgrad_seconds": float(t_sal),
}
json.dump(figures, open(out, "w"), indent=2)
for key, value in figures.items():
    print(f"{key:32s} {value}")
PY
