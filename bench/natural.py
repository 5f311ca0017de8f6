#!/usr/bin/env python3
"""The natural preset against the paper's plain ascent and the Python Lucid reference.

Optimises the 12 benchmark classes on EfficientNet-Lite0 with `--preset simonyan`
and `--preset natural`, and with bench/lucid.py at the same number of steps, then
scores every set with a network that did not make them (EfficientNet-Lite1,
`classviz score`). Prints a table: seconds per class (wall, model load included),
top-1/top-5 on Lite1, top-1 on Lite0. `make bench-natural` runs it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSVIZ = str(ROOT / "target" / "release" / "classviz")
CLASSES = "9,22,76,145,288,309,386,430,563,779,850,963"


def timed(command):
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def score(model, folder):
    pngs = sorted(str(p) for p in Path(folder).glob("*.png") if p.name != "grid.png")
    _, out = timed([CLASSVIZ, "score", "--model", model, *pngs, "--json"])
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", default=CLASSES)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    count = len(args.classes.split(","))
    lite0 = str(ROOT / "weights" / "efficientnet_lite0.pt")
    lite1 = str(ROOT / "weights" / "efficientnet_lite1.pt")
    work = Path(tempfile.mkdtemp(prefix="classviz-natural-"))
    rows = []
    for name, steps, command in [
        ("classviz --preset simonyan", 150, ["--preset", "simonyan"]),
        ("classviz --preset natural", 256, ["--preset", "natural"]),
    ]:
        out = work / name.split()[-1]
        seconds, _ = timed([CLASSVIZ, "--model", lite0, "--class", args.classes, "--threads", str(args.threads),
                            "--out", str(out), "--force", "--quiet", "--json", *command])
        rows.append((name, steps, seconds / count, score(lite1, out), score(lite0, out)))
        print(f"{name}: {seconds / count:.2f} s/class", file=sys.stderr, flush=True)
    out = work / "lucid"
    seconds, _ = timed([sys.executable, str(ROOT / "bench" / "lucid.py"), "--model", lite0, "--classes", args.classes,
                        "--steps", "256", "--threads", str(args.threads), "--out", str(out)])
    for png in out.glob("*.png"):  # name them <index>_lucid.png for `classviz score`
        png.rename(out / f"{png.stem}_lucid.png")
    rows.append(("Python Lucid reference (bench/lucid.py)", 256, seconds / count, score(lite1, out), score(lite0, out)))
    print(f"\nEfficientNet-Lite0, {count} classes ({args.classes}), {args.threads} threads, one run each\n")
    print("| method | steps | s/class | Lite1 top-1 | Lite1 top-5 | Lite0 top-1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, steps, per_class, second, own in rows:
        print(f"| {name} | {steps} | {per_class:.2f} | {second['top1']}/{count} | {second['top5']}/{count} "
              f"| {own['top1']}/{count} |")


if __name__ == "__main__":
    main()
