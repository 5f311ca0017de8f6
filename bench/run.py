#!/usr/bin/env python3
"""Benchmark classviz against the Python/PyTorch reference (bench/reference.py).

Runs classviz and the references on the same exported model, the same classes,
iterations and thread count, --repeats times each (interleaved, so that drift
in the machine's speed hits all alike), and prints seconds per class (median,
wall time including model load) and the ratios. `make bench` runs it.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import CLASSVIZ, KEEP_FREED_MEMORY, LITE0, PYTHON, ROOT, json_lines, timed, top1
DEFAULT_CLASSES = "1,9,100,130,309,407,963,967"


# The rows `make bench` prints: classviz at its defaults and on each engine, with and
# without its allocator setting; the Python references as users run them and with the
# same allocator setting; Python driving the same compiled package; torch.compile.
DEFAULT_ROWS = [
    "classviz", "classviz-torchscript", "classviz-compiled", "classviz-torchscript-system-malloc",
    "classviz-compiled-system-malloc", "naive", "tuned", "tuned-malloc", "package", "compile",
]
ALL_ROWS = DEFAULT_ROWS + ["package-malloc", "compile-malloc", "tuned-cl", "tuned-bf16"]


def run_classviz(args, out_dir, extra=(), env=None):
    command = [
        CLASSVIZ, "--model", args.model, "--class", args.classes, "--iters", str(args.iters),
        "--batch", str(args.batch), "--threads", str(args.threads), "--out", out_dir, "--force",
        "--quiet", "--json", *extra,
    ]
    seconds, out = timed(command, env)
    return seconds, top1(json_lines(out))


def run_reference(args, mode, extra=(), env=None):
    command = [
        PYTHON, ROOT / "bench" / "reference.py", "--mode", mode, "--model", args.model,
        "--classes", args.classes, "--iters", str(args.iters), "--batch", str(args.batch),
        "--threads", str(args.threads), *extra,
    ]
    seconds, out = timed(command, env)
    result = json.loads(out.splitlines()[-1])
    return seconds, sum(row["top1"] for row in result["classes"])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(LITE0))
    parser.add_argument("--classes", default=DEFAULT_CLASSES)
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--batch", type=int, default=4, help="classviz's and the tuned reference's batch size")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(DEFAULT_ROWS),
                        help="comma list of: " + ", ".join(ALL_ROWS) + " (-malloc: glibc told to keep freed "
                             "memory, as classviz does itself; -system-malloc: classviz with glibc's defaults; "
                             "package: Python driving classviz's compiled package; compile: torch.compile)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    count = len(args.classes.split(","))
    out_dir = tempfile.mkdtemp(prefix="classviz-bench-")
    system = {"CLASSVIZ_MALLOC": "system"}
    contenders = {
        "classviz": lambda: run_classviz(args, out_dir),
        "classviz-torchscript": lambda: run_classviz(args, out_dir, ["--engine", "torchscript"]),
        "classviz-compiled": lambda: run_classviz(args, out_dir, ["--engine", "compiled"]),
        "classviz-torchscript-system-malloc": lambda: run_classviz(args, out_dir, ["--engine", "torchscript"], system),
        "classviz-compiled-system-malloc": lambda: run_classviz(args, out_dir, ["--engine", "compiled"], system),
        "naive": lambda: run_reference(args, "naive"),
        "tuned": lambda: run_reference(args, "tuned"),
        "tuned-malloc": lambda: run_reference(args, "tuned", env=KEEP_FREED_MEMORY),
        "package": lambda: run_reference(args, "package"),
        "package-malloc": lambda: run_reference(args, "package", env=KEEP_FREED_MEMORY),
        "compile": lambda: run_reference(args, "compile"),
        "compile-malloc": lambda: run_reference(args, "compile", env=KEEP_FREED_MEMORY),
        "tuned-cl": lambda: run_reference(args, "tuned", ["--channels-last"]),
        "tuned-bf16": lambda: run_reference(args, "tuned", ["--channels-last", "--bf16"]),
    }
    chosen = [name for name in args.only.split(",") if name]
    times = {name: [] for name in chosen}
    top1 = {}
    for repeat in range(args.repeats):
        for name in chosen:
            seconds, hits = contenders[name]()
            times[name].append(seconds / count)
            top1[name] = hits
            print(f"run {repeat + 1}/{args.repeats} {name:10s} {seconds / count:7.2f} s/class, {hits}/{count} top-1",
                  file=sys.stderr, flush=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads"
    print(f"\nEfficientNet-Lite0, {count} classes ({args.classes}), {args.iters} iters, batch {args.batch}; "
          f"{machine}; median of {args.repeats}, wall time incl. model load; {time.strftime('%Y-%m-%d')}\n")
    print("| implementation | s/class (median) | runs | top-1 | classviz speed-up |")
    print("| --- | ---: | --- | ---: | ---: |")
    base = medians.get("classviz")
    for name in chosen:
        runs = ", ".join(f"{v:.2f}" for v in times[name])
        ratio = f"{medians[name] / base:.2f}x" if base else "-"
        print(f"| {name} | {medians[name]:.2f} | {runs} | {top1[name]}/{count} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps({"medians": medians, "runs": times, "top1": top1, "machine": machine,
                                         "classes": args.classes, "iters": args.iters, "batch": args.batch}))


if __name__ == "__main__":
    main()
