#!/usr/bin/env python3
"""A tapped model against the same model untapped, on a class-logit run.

weights/efficientnet_lite0_taps.pt returns six blocks' activations beside the
logits; a run that only maximises logits should not pay for them. Runs classviz
on both models alternately (same classes, steps, threads), --repeats times, and
prints the medians and the ratio. `make bench-taps` runs it; a quiet machine, please.
"""

import argparse
import os
import statistics
import sys
import tempfile

from common import CLASSVIZ, LITE0, ROOT, timed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", default="1,9,100,130")
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    models = {"untapped": LITE0,
              "tapped": ROOT / "weights" / "efficientnet_lite0_taps.pt"}
    times = {name: [] for name in models}
    out = tempfile.mkdtemp(prefix="classviz-taps-")
    for repeat in range(args.repeats):
        for name, model in models.items():
            seconds, _ = timed([CLASSVIZ, "--model", model, "--class", args.classes, "--iters", str(args.iters),
                                "--threads", str(args.threads), "--out", f"{out}/{name}", "--force", "--quiet"])
            times[name].append(seconds)
            print(f"run {repeat + 1}/{args.repeats} {name:9s} {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["tapped"] / medians["untapped"]
    print(f"\nclasses {args.classes}, {args.iters} iters, {args.threads} threads, median of {args.repeats}:\n")
    print("| model | seconds (median) | runs |")
    print("| --- | ---: | --- |")
    for name, values in times.items():
        print(f"| {name} | {medians[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print(f"\ntapped / untapped: {ratio:.3f} ({100 * (ratio - 1):+.1f}%)")


if __name__ == "__main__":
    main()
