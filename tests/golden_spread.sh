#!/usr/bin/env bash
# How far classviz's golden results move with the thread count and the CPU's
# kernels: runs tests/golden.rs under each setting and prints the distances
# each test measured (the tolerances in tests/golden.rs come from this table).
#   tests/golden_spread.sh            (after `make test` has built everything)
set -euo pipefail
cd "$(dirname "$0")/.."
export LIBTORCH_USE_PYTORCH=1 PATH="$PWD/.venv/bin:$PATH"
cargo test --release --test golden --no-run > /dev/null 2>&1
printf '%-8s %-8s %-40s %s\n' threads kernels test distances
for isa in default AVX2 SSE41; do
  for threads in 1 2 4; do
    env OMP_NUM_THREADS=$threads ONEDNN_MAX_CPU_ISA=${isa/default/ALL} \
      cargo test --release --test golden -- --nocapture --test-threads 1 2>&1 \
      | sed -n 's/^test \([a-z0-9_]*\) \.\.\. golden [a-z0-9]*: \(.*\)/\1 \2/p' \
      | while read -r name rest; do printf '%-8s %-8s %-40s %s\n' "$threads" "$isa" "${name:0:40}" "$rest"; done
  done
done
