#!/usr/bin/env python3
"""The saliency tables of docs/saliency.md, measured in one run on the tapped Lite0
(weights/efficientnet_lite0_taps.pt), each printed as markdown:

  faithfulness   every method, the class activation maps included, on ten photos: the
                 five in tests/data and five from the packages that no test uses
                 (scikit-learn's china and flower, scikit-image's camera, brick, horse);
                 deletion / insertion against the mean of the random orders (drawn
                 until each map's verdict is decided, 4 to 32), x where a method loses
                 to it.
  sanity         the cascading randomisation test (saliency --sanity) of every method on
                 three photos: Spearman's rho and SSIM against the trained model's map,
                 per depth, averaged over the photos (variants made by export.py --randomise).
  runtime        whole `classviz saliency` runs on coffee.png, medians of 3 interleaved:
                 --method gradient on the plain and on the tapped model, --method grad-cam
                 on the tapped one (the issue: no slower than gradient plus the tapped load).
  vit-digits     the attention rollouts and the CAMs (at encoder_layer_1) on the ViT
                 trained on digits (tests/models/families/digits_vit_taps.pt, exported
                 with --attention; `make fixtures` builds it) over its 30 held-out digits:
                 how often each beats random orders on deletion, insertion and both.
  segment        the paper's section 3.1 on composites with known masks: an object photo
                 pasted at random places and scales onto the packages' textures; mask IoU
                 and box IoU for --segment, --box and the map's top 30% of pixels, over
                 several seeds, means.

python bench/saliency_tables.py [--only faithfulness,sanity,segment,runtime,vit-digits] [--seeds N]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from common import CLASSVIZ, LITE0, ROOT, classviz, run
TAPPED = ROOT / "weights" / "efficientnet_lite0_taps.pt"
TAPS = "_blocks.1,_blocks.3,_blocks.5,_blocks.8,_blocks.11,_blocks.15"
IN_REPOSITORY = ["coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"]
SANITY_PHOTOS = ["coffee.png", "chelsea.png", "rocket.jpg"]
METHODS = ["gradient", "smoothgrad", "gradient-x-input", "integrated-gradients",
           "grad-cam", "grad-cam++", "layer-cam", "score-cam"]
# The thresholded map: its top fraction of pixels.
THRESHOLD_FRACTION = 0.3


def off_repository_photos(folder):
    """Five photos from the packages, as PNG files."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    images = dict(zip(("china", "flower"), load_sample_images().images))
    images.update({name: getattr(data, name)() for name in ("camera", "brick", "horse")})
    paths = []
    for name, pixels in images.items():
        if pixels.dtype == bool:
            pixels = pixels.astype(np.uint8) * 255
        path = folder / f"{name}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def faithfulness(folder):
    photos = [ROOT / "tests" / "data" / name for name in IN_REPOSITORY] + off_repository_photos(folder)
    print("\n| photo | class (p) | " + " | ".join(METHODS) + " | random (mean ± sd) |")
    print("| --- | --- |" + " --- |" * (len(METHODS) + 1))
    wins = {m: 0 for m in METHODS}
    for photo in photos:
        rows = classviz(["saliency", "--model", str(TAPPED), "--image", str(photo), "--method", "all", "--faithfulness",
                    "--out", str(folder / "maps"), "--json"])
        by_method = {r["method"]: r for r in rows}
        first = rows[0]
        cells = []
        for method in METHODS:
            r = by_method[method]
            mark = "" if r["beats_random"] else " ✗"
            wins[method] += r["beats_random"]
            cells.append(f"{r['deletion_auc']:.3f} / {r['insertion_auc']:.3f}{mark}")
        random = (f"{first['random_auc']:.3f} ± {first['random_deletion_std']:.3f} / "
                  f"{first['random_insertion_auc']:.3f} ± {first['random_insertion_std']:.3f}")
        print(f"| {photo.name} | {first['class']} {first['name']} ({first['prob']:.3f}) | " + " | ".join(cells) + f" | {random} |")
    print("| beats random on both | | " + " | ".join(f"{wins[m]}/{len(photos)}" for m in METHODS) + " | |")


def sanity(folder):
    sidecar = json.loads(TAPPED.with_suffix(".json").read_text())
    if not sidecar.get("randomised"):
        run([sys.executable, ROOT / "weights" / "export.py", "efficientnet_lite0", "--taps", TAPS, "--randomise"])
    photos = [str(ROOT / "tests" / "data" / name) for name in SANITY_PHOTOS]
    args = ["saliency", "--model", str(TAPPED), "--method", "all", "--sanity", "--out", str(folder), "--json"]
    for photo in photos:
        args += ["--image", photo]
    rows = classviz(args)
    depths = sorted({r["depth"] for r in rows})
    names = {r["depth"]: r["blocks"][-1] for r in rows}
    print("\nSpearman's ρ / SSIM against the trained model's map, mean of "
          f"{len(photos)} photos ({', '.join(SANITY_PHOTOS)}); top k blocks re-initialised:\n")
    print("| method | " + " | ".join(f"top {d} (to {names[d]})" for d in depths) + " | verdict |")
    print("| --- |" + " ---: |" * len(depths) + " --- |")
    for method in METHODS:
        cells, last = [], None
        for depth in depths:
            chosen = [r for r in rows if r["method"] == method and r["depth"] == depth]
            rho = np.mean([r["spearman"] for r in chosen])
            ssim = np.mean([r["ssim"] for r in chosen])
            cells.append(f"{rho:.2f} / {ssim:.2f}")
            if depth == depths[min(2, len(depths) - 1)]:
                last = rho
        verdict = "**flagged**: still alike with the top blocks random" if last >= 0.5 else "changes"
        print(f"| {method} | " + " | ".join(cells) + f" | {verdict} |")


def composite(obj, texture, side, left, top):
    canvas = texture.copy()
    canvas.paste(obj.resize((side, side), Image.BICUBIC), (left, top))
    mask = np.zeros((224, 224), bool)
    mask[top:top + side, left:left + side] = True
    return canvas, mask


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 0.0


def box_mask(box, scale_x=1.0, scale_y=1.0):
    mask = np.zeros((224, 224), bool)
    if box:
        mask[int(box["y0"] / scale_y):int(np.ceil(box["y1"] / scale_y)), int(box["x0"] / scale_x):int(np.ceil(box["x1"] / scale_x))] = True
    return mask


def segment(folder, seeds, method):
    from skimage import data

    objects = {"cat": data.chelsea()[20:280, 100:360], "coffee": data.coffee()[40:360, 140:460],
               "astronaut": data.astronaut()[0:300, 120:420]}
    textures = {name: Image.fromarray(getattr(data, name)()).convert("RGB").resize((224, 224)) for name in ("brick", "grass", "gravel")}
    rng = np.random.default_rng(0)
    scores = {k: [] for k in ("segment mask", "segment box", "--box", "top 30% of the map")}
    for seed in range(seeds):
        for name, pixels in objects.items():
            for texture_name, texture in textures.items():
                side = int(rng.integers(90, 170))
                left, top = (int(v) for v in rng.integers(0, 224 - side, size=2))
                image, truth = composite(Image.fromarray(pixels), texture, side, left, top)
                path = folder / f"{name}_{texture_name}_{seed}.png"
                image.save(path)
                row = classviz(["saliency", "--image", str(path), "--method", method, "--segment", "--box",
                           "--random-orders", "2", "--out", str(folder / "out"), "--json"])[0]
                mask = np.asarray(Image.open(row["mask"])) > 127
                raw = np.asarray(Image.open(row["raw"])).astype(float)
                top_pixels = raw >= np.quantile(raw, 1 - THRESHOLD_FRACTION)
                scores["segment mask"].append(iou(mask, truth))
                scores["segment box"].append(iou(box_mask(row.get("mask_box")), truth))
                scores["--box"].append(iou(box_mask(row.get("box")), truth))
                scores["top 30% of the map"].append(iou(top_pixels, truth))
    count = len(scores["--box"])
    print(f"\n{count} composites ({len(objects)} objects × {len(textures)} textures × {seeds} seeds, "
          f"object side 90–169 px on 224), `--method {method}`; IoU with the pasted object, mean ± sd:\n")
    print("| localisation | IoU |")
    print("| --- | ---: |")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} |")


def runtime(folder, vit=None, repeats=3):
    """The whole `saliency` command on one photo, 2 cores: a map alone (the
    default), and a map with its faithfulness scores; the map's and the scores'
    own seconds from the JSON. With `vit`, a ViT exported with its blocks'
    tokens as taps, at the default tap, and refused at its last block."""
    import statistics
    import time

    from common import attempt

    photo = str(ROOT / "tests" / "data" / "coffee.png")
    runs = {"gradient, plain model": ["--model", str(LITE0), "--method", "gradient"],
            "grad-cam, tapped Lite0": ["--model", str(TAPPED), "--method", "grad-cam"],
            "grad-cam + --faithfulness, tapped Lite0": ["--model", str(TAPPED), "--method", "grad-cam",
                                                         "--faithfulness"]}
    if vit:
        runs["grad-cam, ViT (default tap)"] = ["--model", vit, "--method", "grad-cam"]
        runs["grad-cam + --faithfulness, ViT"] = ["--model", vit, "--method", "grad-cam", "--faithfulness"]
    times = {name: [] for name in runs}
    parts = {}
    for _ in range(repeats):
        for name, extra in runs.items():
            started = time.perf_counter()
            row = classviz(["saliency", "--image", photo, "--out", str(folder / "time"), "--json", *extra])[0]
            times[name].append(time.perf_counter() - started)
            parts[name] = (row["seconds"], row.get("faithfulness_seconds"), row.get("random_orders"), row.get("tap"))
    print("\n| run (coffee.png, whole process) | seconds (median) | runs | map s | scores s (orders) | tap |")
    print("| --- | ---: | --- | ---: | ---: | --- |")
    for name, values in times.items():
        map_s, scores_s, orders, tap = parts[name]
        scores = f"{scores_s:.2f} ({orders})" if scores_s is not None else "-"
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} "
              f"| {map_s:.2f} | {scores} | {tap or '-'} |")
    if vit:
        last = [CLASSVIZ, "saliency", "--model", vit, "--image", photo, "--method", "grad-cam", "--tap", "blocks.11",
                "--out", str(folder / "time")]
        ok, why, seconds, _ = attempt(last)
        print(f"\ngrad-cam at blocks.11 (patch tokens that never reach the class token): "
              f"{'ran' if ok else 'refused'} after {seconds:.1f} s: {why}")


DIGITS_VIT = ROOT / "tests" / "models" / "families" / "digits_vit_taps.pt"
VIT_METHODS = ["rollout", "gradient-rollout", "grad-cam", "grad-cam++", "score-cam"]


def vit_digits(folder):
    digits = sorted((ROOT / "tests" / "models" / "digits_test").glob("*.png"))
    if not DIGITS_VIT.exists() or not digits:
        sys.exit("saliency_tables.py: vit-digits needs the test fixtures: run `make fixtures`")
    images = [a for d in digits for a in ("--image", str(d))]
    rows = classviz(["saliency", "--threads", "1", "--model", str(DIGITS_VIT), *images,
                     "--method", ",".join(VIT_METHODS), "--tap", "encoder.layers.encoder_layer_1",
                     "--faithfulness", "--random-orders", "16", "--out", str(folder / "digits"), "--json"])
    print(f"\n| method (CAMs at `encoder_layer_1`) | deletion below random | insertion above random "
          f"| beats random on both | median seconds per map |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for method in VIT_METHODS:
        of = [r for r in rows if r["method"] == method]
        deletion = sum(r["deletion_auc"] < r["random_auc"] for r in of)
        insertion = sum(r["insertion_auc"] > r["random_insertion_auc"] for r in of)
        both = sum(bool(r["beats_random"]) for r in of)
        seconds = float(np.median([r["seconds"] for r in of]))
        n = len(of)
        print(f"| {method} | {deletion}/{n} | {insertion}/{n} | {both}/{n} | {seconds:.4f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="faithfulness,sanity,segment,runtime")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--segment-method", default="smoothgrad")
    parser.add_argument("--vit", help="runtime: also a ViT exported with its blocks as taps (timm, random weights)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="classviz-saliency-") as tmp:
        folder = Path(tmp)
        for table in args.only.split(","):
            {"faithfulness": lambda: faithfulness(folder), "sanity": lambda: sanity(folder),
             "segment": lambda: segment(folder, args.seeds, args.segment_method),
             "runtime": lambda: runtime(folder, args.vit), "vit-digits": lambda: vit_digits(folder)}[table]()


if __name__ == "__main__":
    main()
