#!/usr/bin/env python3
"""An independent reference for classviz's class activation maps: Grad-CAM,
Grad-CAM++ and Score-CAM on the eager EfficientNet-Lite0 (padding folded, as
exported), with forward and backward hooks on the tapped block, written from
the papers (Selvaraju et al. 2017; Chattopadhay et al. 2018; Wang et al. 2020).

Writes, into tests/models/:
  cam_<photo>.png             the photo centre-cropped to 224x224 (the exact pixels both sides use)
  cam_<photo>_<method>.npy    the map, [224, 224] float32 in [0, 1]
  cam_reference.json          per photo: the class (Lite0's top-1), the tap, the methods

tests/saliency.rs compares classviz's maps on the tapped export with these.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))
from classviz.export import lite  # noqa: E402

OUT = ROOT / "tests" / "models"
TAP = "_blocks.15"
PHOTOS = ("coffee", "chelsea", "astronaut")
SCORE_CAM_PHOTOS = ("coffee",)
SIZE = 224


def crop(name):
    """The photo resized (shorter side 224, bicubic) and centre-cropped to 224x224."""
    image = Image.open(ROOT / "tests" / "data" / f"{name}.png").convert("RGB")
    w, h = image.size
    scale = SIZE / min(w, h)
    image = image.resize((max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - SIZE) // 2, (h - SIZE) // 2
    return image.crop((left, top, left + SIZE, top + SIZE))


def normalised(image):
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    return (x - lite.LITE_MEAN) / lite.LITE_STD


class Hooked:
    """The block's output A and, after a backward pass, dS/dA, caught by hooks."""

    def __init__(self, model, name):
        self.activation = self.gradient = None
        dict(model.named_modules())[name].register_forward_hook(self.forward)

    def forward(self, module, inputs, output):
        self.activation = output
        if output.requires_grad:
            output.register_hook(self.backward)

    def backward(self, grad):
        self.gradient = grad


def finish(coarse):
    """Upsample to the input (bilinear), rectify, scale by the maximum."""
    up = F.interpolate(coarse[None, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
    up = up.clamp_min(0)
    return (up / up.max().clamp_min(1e-12)).numpy().astype(np.float32)


def gradient_maps(model, hooked, x, cls):
    x = x.clone().requires_grad_(True)
    model(x)[0, cls].backward()
    a, g = hooked.activation.detach()[0], hooked.gradient.detach()[0]
    grad_cam = (g.mean((1, 2))[:, None, None] * a).sum(0)
    g2, g3 = g ** 2, g ** 3
    denominator = 2 * g2 + a.sum((1, 2))[:, None, None] * g3
    coefficients = torch.where(g != 0, g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator)), torch.zeros_like(g))
    plus_plus = ((coefficients * g.clamp_min(0)).sum((1, 2))[:, None, None] * a).sum(0)
    return {"grad-cam": finish(grad_cam), "grad-cam++": finish(plus_plus)}


def score_cam(model, hooked, x, cls):
    with torch.no_grad():
        model(x)
        a = hooked.activation[0]
        masks = F.interpolate(a[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        low = masks.flatten(1).min(1).values[:, None, None, None]
        high = masks.flatten(1).max(1).values[:, None, None, None]
        masks = (masks - low) / (high - low).clamp_min(1e-12)
        baseline = model(torch.zeros_like(x)).softmax(-1)[0, cls]
        kept = torch.cat([model(x * chunk).softmax(-1)[:, cls] for chunk in masks.split(16)])
        return finish(((kept - baseline)[:, None, None] * a).sum(0))


def main():
    torch.set_num_threads(1)
    model, _ = lite.folded("efficientnet_lite0")
    hooked = Hooked(model, TAP)
    reference = {}
    for name in PHOTOS:
        image = crop(name)
        image.save(OUT / f"cam_{name}.png")
        x = normalised(image)
        with torch.no_grad():
            cls = int(model(x).argmax())
        maps = gradient_maps(model, hooked, x, cls)
        if name in SCORE_CAM_PHOTOS:
            maps["score-cam"] = score_cam(model, hooked, x, cls)
        for method, values in maps.items():
            np.save(OUT / f"cam_{name}_{method}.npy", values)
        reference[name] = {"class": cls, "tap": TAP, "methods": sorted(maps)}
    (OUT / "cam_reference.json").write_text(json.dumps(reference, indent=2) + "\n")
    print(f"class activation map references for {', '.join(PHOTOS)} written to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
