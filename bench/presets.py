#!/usr/bin/env python3
"""Each preset against its Python/PyTorch reference, the same model, classes and steps,
in one run: `--preset simonyan` against bench/reference.py (tuned: batched, the input's
gradient only, channels-last), `--preset natural` against bench/lucid.py, `--preset maco`
against bench/maco.py. The references read the preset's resolved settings from classviz
(`--dry-run`), so that both do the same work per step. Interleaved runs, whole processes
(model load included); seconds per class are medians, and the images of the first run
of each are scored by EfficientNet-Lite1 (a network that made none of them), so that
the speed is not bought with quality.

    .venv/bin/python3 bench/presets.py [--presets simonyan,natural,maco] [--repeats 3]

`make bench-presets` runs it (about 25 minutes on 2 cores).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import CLASSVIZ, LITE0, LITE1, PYTHON, ROOT, class_images, score, timed

CLASSES = "9,22,76,145,288,309,386,430"


def commands(preset, classes, threads, out):
    """(classviz's command, the reference's) for `preset`, writing into `out`."""
    ours = [CLASSVIZ, "--model", str(LITE0), "--threads", str(threads), "--class", classes, "--preset", preset,
            "--force", "--quiet", "--out", str(out / "classviz")]
    bench = ROOT / "bench"
    if preset == "simonyan":
        theirs = [PYTHON, bench / "reference.py", "--mode", "tuned", "--channels-last", "--classes", classes,
                  "--threads", str(threads), "--out", out / "reference"]
    elif preset == "natural":
        theirs = [PYTHON, bench / "lucid.py", "--classes", classes, "--threads", str(threads), "--out",
                  out / "reference"]
    else:
        theirs = [PYTHON, bench / "maco.py", "--classes", classes, "--threads", str(threads), "--out",
                  out / "reference"]
    return ours, theirs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="simonyan,natural,maco")
    parser.add_argument("--classes", default=CLASSES)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    count = len(args.classes.split(","))
    work = Path(tempfile.mkdtemp(prefix="classviz-presets-"))
    times = {}
    for repeat in range(args.repeats):
        for preset in args.presets.split(","):
            out = work / f"{preset}{repeat}"
            for who, command in zip(("classviz", "reference"), commands(preset, args.classes, args.threads, out)):
                seconds, _ = timed(command)
                times.setdefault((preset, who), []).append(seconds / count)
                print(f"{preset} {who}: {seconds / count:.2f} s/class (run {repeat + 1})", file=sys.stderr, flush=True)
    print(f"\nEfficientNet-Lite0, {count} classes ({args.classes}), {args.threads} threads, "
          f"median of {args.repeats} interleaved runs\n")
    print("| preset | classviz s/class | reference s/class | reference / classviz | Lite1 top-1, mean p: classviz | reference |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for preset in args.presets.split(","):
        ours, theirs = (statistics.median(times[(preset, who)]) for who in ("classviz", "reference"))
        verdicts = []
        for who in ("classviz", "reference"):
            folder = work / f"{preset}0" / who
            images = class_images(folder) if who == "classviz" else sorted(str(p) for p in folder.glob("*.png"))
            verdict = score(str(LITE1), images)
            verdicts.append(f"{verdict['top1']}/{count}, {verdict['mean_prob']:.2f}")
        print(f"| {preset} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}x | {verdicts[0]} | {verdicts[1]} |")
    (work / "times.json").write_text(json.dumps({f"{p} {w}": t for (p, w), t in times.items()}))


if __name__ == "__main__":
    main()
