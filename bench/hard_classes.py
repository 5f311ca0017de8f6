#!/usr/bin/env python3
"""Choose the quality benchmark's hard classes by measurement.

Runs the natural preset at its defaults on the sweep classes (every 3rd class, 0 to
999, less the benchmark's original 50 and its 25 held-out classes: 308 classes),
scores every image with EfficientNet-Lite1 (the tuning scorer), and keeps the 50 with
the lowest probability of their class. Writes bench/results/hard_classes.json: the
chosen classes, and every swept class's probability and category, so that the choice
can be read and redone. 59 minutes at one thread (2026-12-03).

    .venv/bin/python3 bench/hard_classes.py [--count 50] [--threads N]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from categories import category
from common import CLASSVIZ, LITE0, LITE1, class_images, score, timed
from quality import HARD_FILE as OUT, SETS

SWEEP = [c for c in range(0, 1000, 3) if c not in SETS["original"] and c not in SETS["heldout"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="classviz-sweep-")))
    args = parser.parse_args()
    lite0, lite1 = str(LITE0), str(LITE1)
    classes = ",".join(map(str, SWEEP))
    seconds, _ = timed([CLASSVIZ, "--model", lite0, "--class", classes, "--preset", "natural", "--threads",
                        str(args.threads), "--out", args.work, "--quiet"])
    verdict = score(lite1, class_images(args.work))
    rows = sorted(({"class": r["class"], "name": r["name"], "prob": r["prob"], "top1": r["top1"],
                    "category": category(r["class"])} for r in verdict["images"]), key=lambda r: r["prob"])
    hard = sorted(r["class"] for r in rows[: args.count])
    OUT.write_text(json.dumps({
        "made": time.strftime("%Y-%m-%d"),
        "command": "bench/hard_classes.py",
        "preset": "natural (defaults)",
        "scorer": "efficientnet_lite1",
        "sweep": len(SWEEP),
        "seconds_per_class": seconds / len(SWEEP),
        "sweep_top1": verdict["top1"],
        "sweep_mean_prob": verdict["mean_prob"],
        "hard": hard,
        "classes": rows,
    }, indent=1) + "\n")
    kinds = {}
    for r in rows[: args.count]:
        kinds[r["category"]] = kinds.get(r["category"], 0) + 1
    print(f"{len(SWEEP)} classes swept in {seconds / 60:.0f} min: Lite1 top-1 {verdict['top1']}, "
          f"mean p {verdict['mean_prob']:.3f}; the {args.count} hardest by kind: {kinds}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
