#!/usr/bin/env python3
"""`classviz exemplars` against the forward passes it needs: a folder of N JPEG photos
(crops of the packages' photos at 300-500 px, made once), scanned by classviz on
EfficientNet-Lite0 for 10 classes (the whole process: model load, decoding, resizing,
the network, the sheets), against the same model's plain forward pass in Python on the
same images already decoded and resized (batches of 16, inference mode, channels-last).
Interleaved runs, medians.

    .venv/bin/python3 bench/exemplars.py [--images 1000] [--repeats 3]

Prints images per second for both, the scan's cost per 1000 images, and the ratio
(the scan's seconds over the forward passes').
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import CLASSVIZ, LITE0, timed

BATCH = 16
LITE_MEAN, LITE_STD = 127 / 255, 128 / 255


def photos():
    from skimage import data
    from sklearn.datasets import load_sample_images

    found = [getattr(data, n)() for n in ("astronaut", "chelsea", "coffee", "rocket")]
    found += list(load_sample_images().images)
    return [p[..., :3] for p in found]


def make_folder(folder, count):
    """`count` JPEGs: random crops of the photos, resized to 300-500 px."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == count:
        return
    rng = np.random.default_rng(0)
    sources = photos()
    for k in range(count):
        photo = sources[k % len(sources)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w)))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        size = int(rng.integers(300, 500))
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BICUBIC)
        crop.save(folder / f"{k:05d}.jpg", quality=90)


def forward_seconds(folder, threads):
    """The plain forward passes over the folder's images, decoded and resized beforehand."""
    torch.set_num_threads(threads)
    model = torch.jit.load(str(LITE0)).eval()
    images = []
    for path in sorted(folder.glob("*.jpg")):
        image = Image.open(path).convert("RGB")
        short = min(image.size)
        left, top = (image.width - short) // 2, (image.height - short) // 2
        image = image.crop((left, top, left + short, top + short)).resize((224, 224), Image.BICUBIC)
        images.append(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1))
    x = (torch.stack(images) - LITE_MEAN) / LITE_STD
    with torch.inference_mode():
        model(x[:BATCH].contiguous(memory_format=torch.channels_last))  # warm-up
        started = time.perf_counter()
        for start in range(0, len(x), BATCH):
            model(x[start:start + BATCH].contiguous(memory_format=torch.channels_last))
        return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.gettempdir()) / f"classviz-exemplar-bench-{args.images}"
    make_folder(folder, args.images)
    scans, forwards = [], []
    for repeat in range(args.repeats):
        out = Path(tempfile.mkdtemp(prefix="classviz-exemplars-"))
        seconds, _ = timed([CLASSVIZ, "exemplars", "--model", LITE0, "--images", folder, "--class", "0-9",
                            "--threads", str(args.threads), "--out", out, "--quiet", "--force"])
        scans.append(seconds)
        forwards.append(forward_seconds(folder, args.threads))
        print(f"run {repeat + 1}: scan {scans[-1]:.1f} s, forward passes {forwards[-1]:.1f} s", file=sys.stderr)
    scan, forward = statistics.median(scans), statistics.median(forwards)
    print(f"\nEfficientNet-Lite0, {args.images} JPEGs of 300-500 px, 10 classes, {args.threads} threads, "
          f"median of {args.repeats}\n")
    print("| run | seconds | images/s | per 1000 images |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| classviz exemplars (whole process) | {scan:.1f} | {args.images / scan:.1f} | {1000 * scan / args.images:.1f} s |")
    print(f"| Python: the forward passes alone | {forward:.1f} | {args.images / forward:.1f} | "
          f"{1000 * forward / args.images:.1f} s |")
    print(f"\nThe scan costs {scan / forward:.2f}x the forward passes it needs.")


if __name__ == "__main__":
    main()
