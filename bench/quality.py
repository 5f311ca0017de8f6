#!/usr/bin/env python3
"""Class models that other networks recognise: the quality benchmark.

Optimises class sets on EfficientNet-Lite0 with each preset and scores every image
with networks that did not make it: EfficientNet-Lite1 (the tuning scorer) and
EfficientNet-Lite2 (the second opinion, which no tuning looks at). Per preset and set:
top-1, top-5 and mean probability of the intended class on each scorer, the streak
ratio (bench/streaks.py), seconds per class (wall, model load included, with the ratio
to the first run of the same set), and per-category summaries (animals, vehicles,
other man-made, food, scenes and nature; bench/categories.py).

The sets:
  original  the 50 classes 13, 33, ..., 993 (every 20th from 13)
  hard      the 50 classes a sweep of the natural preset over 308 others found hardest
            for Lite1 (bench/hard_classes.py; bench/results/hard_classes.json)
  heldout   25 other classes, 3, 43, ..., 963 (every 40th from 3), scored by Lite2 only:
            never tune on it

    .venv/bin/python3 bench/quality.py                       # every set, natural and maco (47 min, 2 cores)
    .venv/bin/python3 bench/quality.py --sets heldout
    .venv/bin/python3 bench/quality.py --sets hard --only natural --variant "lp=--preset natural --objective log-prob"
    .venv/bin/python3 bench/quality.py --sets hard --curve 64,128,256,512

`make bench-quality` runs the first. --variant NAME=FLAGS adds a run; --only picks runs
by name; --curve runs each preset at each step count instead (Lite1 only); --json FILE
writes every figure.
"""

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

from categories import ORDER, category
from common import CLASSVIZ, LITE0, LITE1, LITE2, ROOT, class_images, json_lines, score, timed, top1
from streaks import streak_ratio

SETS = {
    "original": list(range(13, 1000, 20)),
    "heldout": list(range(3, 1000, 40)),
}
HARD_FILE = ROOT / "bench" / "results" / "hard_classes.json"
PRESETS = {
    "simonyan": ["--preset", "simonyan"],
    "natural": ["--preset", "natural"],
    "maco": ["--preset", "maco"],
}
SCORERS = {"lite1": LITE1, "lite2": LITE2}


def classes_of(name):
    if name == "hard":
        if not HARD_FILE.is_file():
            sys.exit(f"quality.py: {HARD_FILE} is missing: run bench/hard_classes.py first")
        return json.loads(HARD_FILE.read_text())["hard"]
    return SETS[name]


def verdict(scorer, images):
    """One scorer's verdict on a run's images: totals, per category, per class."""
    scored = score(str(SCORERS[scorer]), images)
    rows = scored["images"]
    kinds = {}
    for row in rows:
        kind = kinds.setdefault(category(row["class"]), {"count": 0, "top1": 0, "prob": 0.0})
        kind["count"] += 1
        kind["top1"] += row["top1"]
        kind["prob"] += row["prob"]
    return {"top1": scored["top1"], "top5": scored["top5"], "mean_prob": scored["mean_prob"], "count": len(rows),
            "categories": {k: {**v, "mean_prob": v["prob"] / v["count"]} for k, v in kinds.items()},
            "per_class": [{"class": r["class"], "prob": r["prob"], "top1": r["top1"]} for r in rows]}


def run(name, flags, classes, scorers, args, work):
    out = work / name
    command = [CLASSVIZ, "--model", args.model, "--class", ",".join(map(str, classes)), "--threads",
               str(args.threads), "--out", out, "--force", "--quiet", "--json", *flags]
    seconds, printed = timed(command)
    rows = json_lines(printed)
    from PIL import Image

    images = class_images(out)
    streaks = [streak_ratio(Image.open(path).convert("RGB")) for path in images]
    return {"name": name, "flags": " ".join(flags), "steps": rows[0]["iters"] if rows else 0,
            "seconds_per_class": seconds / max(len(rows), 1), "own_top1": top1(rows), "count": len(rows),
            "streak_ratio": sum(streaks) / max(len(streaks), 1), "streak_max": max(streaks, default=0.0),
            "scores": {scorer: verdict(scorer, images) for scorer in scorers}}


def table(set_name, results, scorers):
    count = results[0]["count"] if results else 0
    first = results[0]["seconds_per_class"] if results else 1.0
    heads = " | ".join(f"{s} top-1 | {s} top-5 | {s} mean p" for s in scorers)
    print(f"\n**{set_name}** ({count} classes)\n")
    print(f"| run | steps | s/class | vs first | {heads} | own top-1 | streak ratio (mean, max) | flags |")
    print("| --- | ---: | ---: | ---: | " + " ---: | ---: | ---: |" * len(scorers) + " ---: | ---: | --- |")
    for r in results:
        cells = " | ".join(f"{v['top1']}/{count} | {v['top5']}/{count} | {v['mean_prob']:.3f}"
                           for v in (r["scores"][s] for s in scorers))
        print(f"| {r['name']} | {r['steps']} | {r['seconds_per_class']:.2f} | {r['seconds_per_class'] / first:.2f}x "
              f"| {cells} | {r['own_top1']}/{count} | {r['streak_ratio']:.2f}, {r['streak_max']:.2f} | `{r['flags']}` |")
    scorer = scorers[0]
    kinds = [k for k in ORDER if any(k in r["scores"][scorer]["categories"] for r in results)]
    print(f"\nBy category, {scorer} top-1 and mean p:\n")
    print("| run | " + " | ".join(kinds) + " |")
    print("| --- |" + " ---: |" * len(kinds))
    for r in results:
        cats = r["scores"][scorer]["categories"]
        cells = " | ".join(f"{cats[k]['top1']}/{cats[k]['count']}, {cats[k]['mean_prob']:.2f}" if k in cats else "-"
                           for k in kinds)
        print(f"| {r['name']} | {cells} |")


def curve(runs, classes, steps, args, work):
    """Lite1's mean p against steps, per run."""
    print("\n| run | " + " | ".join(f"{s} steps" for s in steps) + " |")
    print("| --- |" + " ---: |" * len(steps))
    figures = {}
    for name, flags in runs.items():
        cells = []
        for count in steps:
            result = run(f"{name}-{count}", [*flags, "--iters", str(count)], classes, ["lite1"], args, work)
            v = result["scores"]["lite1"]
            figures[f"{name}-{count}"] = result
            cells.append(f"{v['top1']}/{v['count']}, {v['mean_prob']:.3f} ({result['seconds_per_class']:.1f} s)")
            print(f"{name} at {count} steps: {cells[-1]}", file=sys.stderr, flush=True)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(LITE0))
    parser.add_argument("--sets", default="original,hard,heldout", help="comma list of original, hard, heldout")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--variant", action="append", default=[], help="NAME=FLAGS, run as well")
    parser.add_argument("--only", help="comma list of run names (presets and variants)")
    parser.add_argument("--curve", help="comma list of step counts: Lite1's mean p against steps")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--keep", type=Path, help="write the images under this folder (else a temp folder)")
    args = parser.parse_args()
    runs = dict(PRESETS)
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        runs[name] = shlex.split(flags)
    # The paper's preset only on request (it scored 3/50 on Lite1; README).
    only = args.only.split(",") if args.only else [n for n in PRESETS if n != "simonyan"]
    runs = {name: runs[name] for name in only}
    work = args.keep or Path(tempfile.mkdtemp(prefix="classviz-quality-"))
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads"
    print(f"made on {Path(args.model).stem}; {machine}; {time.strftime('%Y-%m-%d')}")
    figures = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "sets": {}}
    for set_name in args.sets.split(","):
        classes = classes_of(set_name)
        if args.curve:
            steps = [int(s) for s in args.curve.split(",")]
            figures["sets"][set_name] = curve(runs, classes, steps, args, work / set_name)
            continue
        scorers = ["lite2"] if set_name == "heldout" else ["lite1", "lite2"]
        results = []
        for name, flags in runs.items():
            results.append(run(name, flags, classes, scorers, args, work / set_name))
            v = results[-1]["scores"][scorers[0]]
            print(f"{set_name} {name}: {results[-1]['seconds_per_class']:.2f} s/class, {scorers[0]} top-1 "
                  f"{v['top1']}/{v['count']}, mean p {v['mean_prob']:.3f}", file=sys.stderr, flush=True)
        table(set_name, results, scorers)
        figures["sets"][set_name] = results
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
