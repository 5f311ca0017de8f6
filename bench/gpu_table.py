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
print("| faster | seconds | slower | seconds | speed-up |")
print("| --- | ---: | --- | ---: | ---: |")
for ours, other in [
    ("one_compiled", "one_torchscript"),
    ("one_compiled", "one_compiled_no_graphs"),
    ("one_compiled", "one_reference"),
    ("b128_compiled", "b128_torchscript"),
    ("b128_compiled", "b128_torchscript_fp32"),
    ("all_compiled", "all_torchscript"),
    ("all_compiled", "all_reference"),
    ("natural_compiled", "natural_torchscript"),
]:
    print(f"| {ours} | {secs(ours)} | {other} | {secs(other)} | {ratio(other, ours)} |")

targets = [("all_compiled", 15.0), ("one_compiled", 5.0), ("natural_compiled", 30.0)]
print("\nTargets: " + "; ".join(f"{name} {secs(name)} s (target {limit:.0f} s)" for name, limit in targets))
print(f"Compiling the package here took {secs('compile')} s.")
for name in ("one_compiled", "all_compiled", "one_torchscript"):
    trace = rows.get(name, {}).get("trace")
    if trace:
        print(f"\n{name} trace: " + "; ".join(trace))
