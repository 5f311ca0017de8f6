#!/usr/bin/env python3
"""Feature accentuation (Hamblin et al. 2024) against adversarial examples.

Each photo is pushed toward two classes: Lite0's own top-1, and its second choice
(a near class). The accentuation is classviz's natural preset started from the photo
(--init image:, the Fourier spectrum of the photo) and held near it by
W * ||f(x) - f(photo)||^2 at a tap (--accentuate W --tap T). The adversarial example is
the paper's plain pixel ascent from the same photo, with no regulariser and no
transforms, stopped at the step whose distance from the photo is closest to the
accentuation's (its learning rate raised until it goes that far). Every image is scored for its target class by Lite0 (which made them),
Lite1 and Lite2 (which did not).

The claim under test: accentuations transfer to other networks, adversarial
examples do not. Prints a markdown table and the totals.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from common import ROOT, classviz
TAPPED = str(ROOT / "weights" / "efficientnet_lite0_taps.pt")
SCORERS = {name: str(ROOT / "weights" / f"efficientnet_{name}.pt") for name in ("lite0", "lite1", "lite2")}
REPOSITORY = ["coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"]


def photos(folder):
    from sklearn.datasets import load_sample_images

    found = [ROOT / "tests" / "data" / name for name in REPOSITORY]
    for name, pixels in zip(("china", "flower"), load_sample_images().images):
        path = folder / f"{name}.png"
        Image.fromarray(pixels).save(path)
        found.append(path)
    return found


def fitted(photo, folder):
    """The photo as Lite0 sees it (crop to 224), as the reference of distances."""
    image = Image.open(photo).convert("RGB")
    w, h = image.size
    scale = 224 / min(w, h)
    image = image.resize((max(224, round(w * scale)), max(224, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - 224) // 2, (h - 224) // 2
    return np.asarray(image.crop((left, top, left + 224, top + 224)), dtype=np.float64) / 255.0


def distance(path, reference):
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    return float(np.sqrt(np.mean((image - reference) ** 2)))


def targets(photo):
    """Lite0's two best classes for the photo."""
    row = classviz(["score", "--model", SCORERS["lite0"], "--class", "0", "--json", str(photo)])[0]
    best = row["images"][0]["predicted"]
    return [(best[0]["class"], best[0]["name"]), (best[1]["class"], best[1]["name"])]


def verdicts(path, cls):
    """Top-1 (and p) of `cls` for the image on each scorer."""
    out = {}
    for name, model in SCORERS.items():
        row = classviz(["score", "--model", model, "--class", str(cls), "--json", str(path)])[0]["images"][0]
        out[name] = (row["top1"], row["prob"])
    return out


def accentuate(photo, cls, folder, args):
    out = folder / "accentuated"
    rows = classviz(["--model", TAPPED, "--class", str(cls), "--preset", "natural", "--init", f"image:{photo}",
                     "--accentuate", str(args.weight), "--tap", args.tap, "--iters", str(args.iters),
                     "--out", str(out), "--force", "--quiet", "--json"])
    return rows[0]["path"]


def adversarial(photo, cls, folder, target_distance, reference, args):
    """The plain pixel ascent's frame closest to `target_distance` from the photo. The
    learning rate starts at --adversarial-lr and grows fourfold (up to three times) until
    the ascent goes at least that far, so that both images are as far from the photo."""
    lr = args.adversarial_lr
    for attempt in range(4):
        out = folder / f"adversarial_{cls}_{attempt}"
        rows = classviz(["--model", TAPPED, "--class", str(cls), "--init", f"image:{photo}", "--lr", str(lr),
                         "--l2", "0", "--iters", str(args.adversarial_iters), "--save-every", "1", "--out", str(out),
                         "--force", "--quiet", "--json"])
        stem = Path(rows[0]["path"]).stem
        frames = sorted((out / "frames" / stem).glob("*.png"))
        distances = {f: distance(f, reference) for f in frames}
        if max(distances.values()) >= target_distance:
            break
        lr *= 4
    return min(frames, key=lambda f: abs(distances[f] - target_distance))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument("--tap", default="_blocks.8")
    parser.add_argument("--iters", type=int, default=128)
    parser.add_argument("--adversarial-lr", type=float, default=0.05)
    parser.add_argument("--adversarial-iters", type=int, default=200)
    parser.add_argument("--only", help="comma list of photo file names")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="classviz-accentuate-"))
    chosen = photos(folder)
    if args.only:
        chosen = [p for p in chosen if p.name in args.only.split(",")]
    print(f"\n`--preset natural --accentuate {args.weight} --tap {args.tap} --iters {args.iters}` from each photo; "
          f"the adversarial example: plain pixel ascent (lr {args.adversarial_lr}), the step at the same distance.\n")
    print("| photo | target | RMS distance: accentuation / adversarial | accentuation: Lite0 / Lite1 / Lite2 top-1 (p) "
          "| adversarial: Lite0 / Lite1 / Lite2 top-1 (p) |")
    print("| --- | --- | ---: | --- | --- |")
    totals = {"accentuation": np.zeros(3), "adversarial": np.zeros(3)}
    count = 0
    for photo in chosen:
        reference = fitted(photo, folder)
        for rank, (cls, name) in enumerate(targets(photo)):
            made = accentuate(photo, cls, folder, args)
            moved = distance(made, reference)
            attack = adversarial(photo, cls, folder, moved, reference, args)
            cells = []
            for label, path in (("accentuation", made), ("adversarial", attack)):
                scores = verdicts(path, cls)
                totals[label] += [scores[n][0] for n in SCORERS]
                cells.append(" / ".join(f"{'✓' if t else '✗'} ({p:.2f})" for t, p in scores.values()))
            count += 1
            kind = "own top-1" if rank == 0 else "near class"
            attacked = distance(attack, reference)
            print(f"| {photo.name} | {cls} {name} ({kind}) | {moved:.3f} / {attacked:.3f} | {cells[0]} | {cells[1]} |")
    for label, total in totals.items():
        print(f"\n{label}: top-1 on Lite0 {int(total[0])}/{count}, Lite1 {int(total[1])}/{count}, Lite2 {int(total[2])}/{count}")


if __name__ == "__main__":
    main()
