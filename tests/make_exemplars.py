#!/usr/bin/env python3
"""Fixtures of `classviz exemplars` (tests/exemplars.rs), after tests/make_models.py and
tests/make_families.py:

  tests/models/exemplars/          every held-out RGB digit (32x32 PNGs), the packages'
                                   photos (scikit-image's and scikit-learn's) resized to
                                   32x32, and exact copies of a few digits (ties)
  tests/models/exemplars_bad/      a few good photos and the inputs a scan must survive:
                                   truncated and non-image files, grayscale, 16-bit,
                                   CMYK, a very thin image
  tests/models/exemplars_reference.json
                                   the brute-force answer, an independent implementation:
                                   each image alone through the digits CNN (PIL, then the
                                   sidecar's normalisation), every class's logit and tap
                                   4's channels' means, sorted per target by activation,
                                   ties to the image first in the sorted list

    .venv/bin/python3 tests/make_exemplars.py
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
OUT = HERE / "models"
FOLDER = OUT / "exemplars"
BAD = OUT / "exemplars_bad"
MODEL = OUT / "families" / "digits_cnn_taps.pt"
TAP = "4"
TOP, BOTTOM = 9, 3
CHANNELS = range(8)
DUPLICATES = 6
SIZE = 32


def packages_photos():
    """The photos scikit-image and scikit-learn ship, as RGB arrays."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket", "camera",
                                                        "immunohistochemistry", "hubble_deep_field")}
    for name, image in zip(("china", "flower"), load_sample_images().images):
        photos[name] = image
    return {name: np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3] for name, p in photos.items()}


def write_folder():
    sys.path.insert(0, str(HERE))
    from make_models import rgb_digits

    shutil.rmtree(FOLDER, ignore_errors=True)
    (FOLDER / "digits").mkdir(parents=True)
    (FOLDER / "photos").mkdir()
    (FOLDER / "ties").mkdir()
    _, (images, labels) = rgb_digits(SIZE)
    for k, (image, label) in enumerate(zip(images, labels)):
        pixels = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        Image.fromarray(pixels).save(FOLDER / "digits" / f"d{k:03d}_{int(label)}.png")
    for name, photo in packages_photos().items():
        Image.fromarray(photo).resize((SIZE, SIZE), Image.BICUBIC).save(FOLDER / "photos" / f"{name}.png")
    for k in range(DUPLICATES):
        shutil.copy(FOLDER / "digits" / sorted(p.name for p in (FOLDER / "digits").iterdir())[k],
                    FOLDER / "ties" / f"copy{k}.png")


def write_bad():
    shutil.rmtree(BAD, ignore_errors=True)
    BAD.mkdir(parents=True)
    photo = packages_photos()["coffee"]
    Image.fromarray(photo).save(BAD / "good.png")
    Image.fromarray(photo).convert("L").save(BAD / "grayscale.png")
    Image.fromarray(photo).convert("CMYK").save(BAD / "cmyk.jpg")
    sixteen = np.asarray(Image.fromarray(photo).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(sixteen).save(BAD / "sixteen_bit.png")
    Image.fromarray(photo).resize((7, 300)).save(BAD / "thin.png")
    whole = (BAD / "good.png").read_bytes()
    (BAD / "truncated.png").write_bytes(whole[: len(whole) // 3])
    (BAD / "not_an_image.jpg").write_text("this is text\n")


def reference():
    """Each image alone, in the scan's order, as an independent brute force."""
    sidecar = json.loads(MODEL.with_suffix(".json").read_text())
    mean = torch.tensor(sidecar["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(sidecar["std"]).view(1, 3, 1, 1)
    model = torch.jit.load(str(MODEL)).eval()
    paths = sorted((p for p in FOLDER.rglob("*.png")), key=lambda p: p.relative_to(FOLDER).parts)
    logits, channels = [], []
    with torch.no_grad():
        for path in paths:
            x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
            out = model((x.permute(2, 0, 1).unsqueeze(0) - mean) / std)
            logits.append(out["logits"][0].double())
            channels.append(out[TAP][0].double().mean((1, 2)))
    logits, channels = torch.stack(logits), torch.stack(channels)

    def ranked(values):
        def rows(order):
            return [{"image": str(paths[i].relative_to(FOLDER)), "activation": float(values[i])} for i in order]

        places = range(len(paths))
        return {"top": rows(sorted(places, key=lambda i: (-float(values[i]), i))[:TOP]),
                "bottom": rows(sorted(places, key=lambda i: (float(values[i]), i))[:BOTTOM])}

    return {"images": len(paths), "top": TOP, "bottom": BOTTOM, "tap": TAP,
            "classes": {str(c): ranked(logits[:, c]) for c in range(logits.shape[1])},
            "channels": {str(k): ranked(channels[:, k]) for k in CHANNELS}}


def main():
    write_folder()
    write_bad()
    answer = reference()
    (OUT / "exemplars_reference.json").write_text(json.dumps(answer, indent=1))
    print(f"make_exemplars.py: {answer['images']} images in {FOLDER}, the brute-force answer beside it",
          file=sys.stderr)


if __name__ == "__main__":
    main()
