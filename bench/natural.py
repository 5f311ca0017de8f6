#!/usr/bin/env python3
"""The natural preset against the paper's plain ascent and its Python reference.

Optimises the 12 benchmark classes on EfficientNet-Lite0 with `--preset simonyan`
and `--preset natural`, and with bench/lucid.py at the same number of steps and with
the natural preset's transforms, then
scores every set with a network that did not make them (EfficientNet-Lite1,
`classviz score`). Prints a table: seconds per class (wall, model load included),
top-1/top-5 on Lite1, top-1 on Lite0. `make bench-natural` runs it.
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import CLASSVIZ, LITE0, LITE1, ROOT, class_images, score, timed

CLASSES = "9,22,76,145,288,309,386,430,563,779,850,963"
# The natural preset's transforms at 224 px (Style::natural in crates/classviz-core/src/presets.rs), so
# that the reference does the same work per step as classviz.
NATURAL_TRANSFORMS = ["--pad", "16", "--jitter", "16", "--scale-low", "0.8", "--scale-high", "1.2", "--degrees", "20"]


def score_folder(model, folder):
    return score(model, class_images(folder))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", default=CLASSES)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each method, interleaved; s/class is their median, scores from the first")
    args = parser.parse_args()
    count = len(args.classes.split(","))
    lite0, lite1 = str(LITE0), str(LITE1)
    work = Path(tempfile.mkdtemp(prefix="classviz-natural-"))
    common = ["--model", lite0, "--threads", str(args.threads)]
    methods = [
        (f"classviz --preset {preset}", steps, preset,
         [CLASSVIZ, *common, "--class", args.classes, "--force", "--quiet", "--json", "--preset", preset])
        for preset, steps in [("simonyan", 150), ("natural", 256)]
    ] + [
        ("Python reference (bench/lucid.py, same transforms)", 256, "lucid",
         [sys.executable, str(ROOT / "bench" / "lucid.py"), *common, "--classes", args.classes, "--steps", "256",
          *NATURAL_TRANSFORMS]),
    ]
    times = {name: [] for name, *_ in methods}
    for repeat in range(args.repeats):
        for name, _, folder, command in methods:
            seconds, _ = timed([*command, "--out", str(work / f"{folder}{repeat}")])
            times[name].append(seconds / count)
            print(f"{name}: {seconds / count:.2f} s/class (run {repeat + 1})", file=sys.stderr, flush=True)
    for png in (work / "lucid0").glob("*.png"):  # name them <index>_lucid.png for `classviz score`
        png.rename(png.with_name(f"{png.stem}_lucid.png"))
    runs = "one run each" if args.repeats == 1 else f"median of {args.repeats} interleaved runs"
    print(f"\nEfficientNet-Lite0, {count} classes ({args.classes}), {args.threads} threads, {runs}\n")
    print("| method | steps | s/class | runs | Lite1 top-1 | Lite1 top-5 | Lite0 top-1 |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for name, steps, folder, _ in methods:
        second, own = score_folder(lite1, work / f"{folder}0"), score_folder(lite0, work / f"{folder}0")
        each = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {name} | {steps} | {statistics.median(times[name]):.2f} | {each} | {second['top1']}/{count} "
              f"| {second['top5']}/{count} | {own['top1']}/{count} |")


if __name__ == "__main__":
    main()
