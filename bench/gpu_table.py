#!/usr/bin/env python3
"""The table of bench/gpu.sh: reads its gpu.jsonl, prints markdown, and writes
gpu.json (every row, keyed by step name) beside it."""

import json
import sys
from pathlib import Path

path = Path(sys.argv[1])
rows = {}
for line in path.read_text().splitlines():
    row = json.loads(line)
    rows[row["name"]] = row
(path.parent / "gpu.json").write_text(json.dumps(rows, indent=1))


def get(name, key="seconds", default=None):
    return rows.get(name, {}).get(key, default)


def secs(name):
    value = get(name)
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def ratio(slow, fast):
    a, b = get(slow), get(fast)
    return f"{a / b:.2f}x" if a and b else "-"


def top1(name):
    row = rows.get(name, {})
    if "top1" in row and "classes" in row:
        return f"{row['top1']}/{row['classes']}"
    if "top1" in row:
        return f"{row['top1']}/{row.get('classes', '?')}"
    return "-"


print("\n## classviz on the GPU (bench/gpu.sh)\n")
print("| step | seconds | top-1 | median S_c | exit | settings |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for name, row in rows.items():
    median = row.get("median_logit")
    median = f"{median:.2f}" if isinstance(median, (int, float)) else "-"
    print(f"| {name} | {secs(name)} | {top1(name)} | {median} | {row['rc']} | {row.get('env', '')} |")

print("\n## Ratios, measured side by side\n")
print("| classviz | seconds | PyTorch reference | seconds | speed-up |")
print("| --- | ---: | --- | ---: | ---: |")
for ours, ref in [
    ("all_best", "ref_all_bf16"),
    ("all_best", "ref_all_fp32"),
    ("all_fp32", "ref_all_fp32"),
    ("natural_sub", "ref_natural_sub"),
]:
    print(f"| {ours} | {secs(ours)} | {ref} | {secs(ref)} | {ratio(ref, ours)} |")

stalled = rows.get("all_fp32", {}).get("stalled")
if stalled is not None:
    noise = rows.get("stalled_noise", {})
    print(f"\nStalled from the zero start (fp32, all classes): {len(stalled)}: {stalled}")
    if noise:
        print(f"Of those, top-1 with --init noise:0.01: {noise.get('top1')}/{noise.get('classes')}"
              f" (still stalled: {len(noise.get('stalled', []))})")
best_stalled = rows.get("all_best", {}).get("stalled")
if best_stalled is not None:
    print(f"Stalled in the best-settings run: {len(best_stalled)}")
for name, row in rows.items():
    if name.endswith("_lite1") and "scored_top1" in row:
        print(f"{name[:-6]} on Lite1: top-1 {row['scored_top1']}/{row['scored_total']}, "
              f"mean p {row.get('scored_mean_prob', 0):.3f}")
cpu, gpu = rows.get("parity_cpu", {}), rows.get("parity_gpu", {})
if cpu and gpu:
    print(f"Parity, class 130: S_c {cpu.get('median_logit')} (CPU) vs {gpu.get('median_logit')} (GPU); "
          f"top-1 {cpu.get('top1')} / {gpu.get('top1')}")
for name in ("one_auto", "one_fp32", "info"):
    trace = rows.get(name, {}).get("trace")
    if trace:
        print(f"\n{name} trace: " + "; ".join(trace))
