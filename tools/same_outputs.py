#!/usr/bin/env python3
"""Whether two classviz builds give the same outputs, bit for bit.

Runs both binaries on the same work and compares what they wrote:
  - the paper's preset on TorchScript, classes 1, 100, 130, 963 x 150 steps, at
    1 and 2 torch threads: PNG pixels and the --json logits;
  - `saliency --method all` on two photos (the tapped Lite0, so the CAMs run
    too): every map's PNG pixels, and the --json class, probability, method and tap.

    .venv/bin/python3 tools/same_outputs.py BEFORE_BINARY AFTER_BINARY [BEFORE_WEIGHTS]

BEFORE_WEIGHTS is a folder of the models for the older binary (default weights/), for
a build that cannot read today's sidecars.

Exit 0 and "identical" when every output matches; else one line per difference.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"
PHOTOS = [ROOT / "tests" / "data" / "coffee.png", ROOT / "tests" / "data" / "chelsea.png"]


def run(binary, args, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"same_outputs.py: {binary} {' '.join(map(str, args[:4]))} … failed: {done.stderr.strip()[-300:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def paper(binary, weights, out, threads):
    return run(binary, ["--model", weights / "efficientnet_lite0.pt", "--engine", "torchscript", "--class", "1,100,130,963", "--iters", "150",
                        "--threads", threads, "--out", out, "--force", "--quiet", "--json"], threads)


def saliency(binary, weights, out):
    args = ["saliency", "--model", weights / "efficientnet_lite0_taps.pt", "--method", "all", "--threads", "2", "--out", out, "--quiet", "--json"]
    for photo in PHOTOS:
        args += ["--image", photo]
    return run(binary, args, 2)


def pixels(folder):
    """Every PNG's pixels, but the methods' sheets: their labels carry the scores."""
    return {p.name: np.asarray(Image.open(p)) for p in sorted(Path(folder).glob("*.png"))
            if not p.name.endswith("_methods.png")}


def compare(label, before, after, differences):
    (rows_a, dir_a), (rows_b, dir_b) = before, after
    keys = lambda rows: [sorted(r) for r in rows]
    if label.startswith("paper") and keys(rows_a) != keys(rows_b):
        differences.append(f"{label}: the --json keys differ")
    # What both builds report of each image or map (a saliency map's faithfulness
    # scores are asked for apart since 0.3, and timings never match).
    kept = ("class", "name", "logit", "prob", "top5", "iters", "stalled", "image", "method", "smoothing", "tap")
    numbers = lambda rows: [{k: v for k, v in r.items() if k in kept} for r in rows]
    if numbers(rows_a) != numbers(rows_b):
        differences.append(f"{label}: the --json values differ")
    a, b = pixels(dir_a), pixels(dir_b)
    if sorted(a) != sorted(b):
        differences.append(f"{label}: different files: {sorted(set(a) ^ set(b))}")
    for name in sorted(set(a) & set(b)):
        if a[name].shape != b[name].shape or not np.array_equal(a[name], b[name]):
            differences.append(f"{label}: {name}'s pixels differ")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    before, after = sys.argv[1:3]
    builds = (("before", before, Path(sys.argv[3]) if len(sys.argv) == 4 else WEIGHTS), ("after", after, WEIGHTS))
    work = Path(tempfile.mkdtemp(prefix="classviz-same-"))
    differences = []
    for threads in (1, 2):
        runs = [(paper(b, w, work / f"{n}-paper-{threads}", threads), work / f"{n}-paper-{threads}")
                for n, b, w in builds]
        compare(f"paper preset at {threads} thread(s)", *runs, differences)
        print(f"paper preset at {threads} thread(s): S_c " +
              ", ".join(f"{r['logit']:.4f}" for r in runs[1][0]), flush=True)
    runs = [(saliency(b, w, work / f"{n}-saliency"), work / f"{n}-saliency") for n, b, w in builds]
    compare("saliency --method all", *runs, differences)
    print(f"saliency --method all: {len(runs[1][0])} maps on {len(PHOTOS)} photos")
    for line in differences:
        print(line)
    print("identical" if not differences else f"{len(differences)} differences")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
