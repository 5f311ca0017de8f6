#!/usr/bin/env python3
"""The golden references of the paper's preset, computed by an implementation
independent of classviz (eager PyTorch, written from the paper's update).

Writes into tests/data/golden/ (committed; rerun only when the paper's preset
is meant to change, then commit what it writes):

  smooth.pt / .json        a small, smooth, well-conditioned TorchScript classifier
                           (conv 5x5 -> tanh -> 4x4 average pool -> linear) on 3x32x32
                           inputs, whose weights come from a formula, not a random
                           generator, so the file is the same wherever it is rebuilt.
                           tanh saturates as the image grows, so the ascent contracts
                           and rounding does not grow over the preset's 150 steps.
  smooth_golden.json       the paper's preset on it, for class SMOOTH_CLASS: the score
                           S_c before each of the 150 updates, the final image in the
                           model's zero-centred space, and S_c of that image saved as
                           8-bit pixels (what `--json` reports).
  lite0_first_steps.json   the first LITE0_STEPS updates on the exported Lite0
                           (weights/efficientnet_lite0.pt) for class LITE0_CLASS:
                           S_c before each update, and the image after them, every
                           LITE0_STRIDE-th pixel. Early in the ascent the gradient is
                           stable to about 1e-6; later, Lite0's ReLU6 boundaries turn
                           float summation order into different images.

The paper's preset, as pinned here: the zero image, LEARNING_RATE, L2_WEIGHT,
ITERS steps of x <- x + lr * (grad S_c(x) - 2 * l2 * x).

Usage: .venv/bin/python tests/golden.py [--threads N]
"""

import argparse
import hashlib
import json
import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "golden"

LEARNING_RATE = 1.0
L2_WEIGHT = 1e-4
ITERS = 150

SHAPE = (3, 32, 32)
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SMOOTH_CLASS = 3

LITE0_CLASS = 1
LITE0_STEPS = 1
LITE0_STRIDE = 8


class Smooth(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 5, padding=2)
        self.pool = torch.nn.AvgPool2d(4)
        self.head = torch.nn.Linear(8 * 8 * 8, len(LABELS))

    def forward(self, x):
        return self.head(self.pool(torch.tanh(self.conv(x))).flatten(1))


def formula(shape, phase, scale):
    """Deterministic weights: scale * sin(1.7 i + phase) * cos(0.31 i), i the flat index."""
    count = math.prod(shape)
    values = [scale * math.sin(1.7 * i + phase) * math.cos(0.31 * i) for i in range(count)]
    return torch.tensor(values, dtype=torch.float32).view(shape)


def smooth_model():
    model = Smooth().eval()
    with torch.no_grad():
        model.conv.weight.copy_(formula(model.conv.weight.shape, 0.3, 0.4))
        model.conv.bias.copy_(formula(model.conv.bias.shape, 1.1, 0.1))
        model.head.weight.copy_(formula(model.head.weight.shape, 2.3, 0.5))
        model.head.bias.copy_(formula(model.head.bias.shape, 0.7, 0.2))
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def paper_ascent(model, shape, target, iters, channels_last):
    """The paper's update on one image; returns the scores before each update and the image."""
    x = torch.zeros(1, *shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    scores = []
    for _ in range(iters):
        xi = x.detach().requires_grad_(True)
        score = model(xi)[:, target].sum()
        (grad,) = torch.autograd.grad(score, xi)
        scores.append(score.item())
        x = x + LEARNING_RATE * (grad - 2 * L2_WEIGHT * x)
    return scores, x.detach()


def saved_score(model, x, mean, std, target):
    """S_c of `x` written as 8-bit pixels and read back, as classviz reports it."""
    mean = torch.tensor(mean).view(1, -1, 1, 1)
    std = torch.tensor(std).view(1, -1, 1, 1)
    pixels = torch.round(torch.clamp(x * std + mean, 0.0, 1.0) * 255.0)
    with torch.no_grad():
        return model((pixels / 255.0 - mean) / std)[0, target].item()


def write_smooth():
    model = smooth_model()
    scripted = torch.jit.freeze(torch.jit.script(model))
    scripted.save(str(OUT / "smooth.pt"))
    sidecar = {
        "name": "smooth",
        "source": "tests/golden.py: weights from a formula, for the golden test",
        "input_shape": list(SHAPE),
        "mean": MEAN,
        "std": STD,
        "labels": LABELS,
        "sha256": hashlib.sha256((OUT / "smooth.pt").read_bytes()).hexdigest(),
    }
    (OUT / "smooth.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    scores, image = paper_ascent(model, SHAPE, SMOOTH_CLASS, ITERS, channels_last=False)
    golden = {
        "class": SMOOTH_CLASS,
        "iters": ITERS,
        "learning_rate": LEARNING_RATE,
        "l2_weight": L2_WEIGHT,
        "scores": scores,
        "saved_score": saved_score(model, image, MEAN, STD, SMOOTH_CLASS),
        "image": image.flatten().tolist(),
    }
    (OUT / "smooth_golden.json").write_text(json.dumps(golden) + "\n")
    spread = image.std().item()
    print(f"smooth: S_c {scores[0]:.4f} -> {scores[-1]:.4f}, image std {spread:.3f}, "
          f"saved S_c {golden['saved_score']:.4f}")


def write_lite0():
    model = torch.jit.load(str(ROOT / "weights" / "efficientnet_lite0.pt")).eval()
    scores, image = paper_ascent(model, (3, 224, 224), LITE0_CLASS, LITE0_STEPS, channels_last=True)
    sampled = image[0, :, ::LITE0_STRIDE, ::LITE0_STRIDE].contiguous()
    golden = {
        "class": LITE0_CLASS,
        "steps": LITE0_STEPS,
        "stride": LITE0_STRIDE,
        "learning_rate": LEARNING_RATE,
        "l2_weight": L2_WEIGHT,
        "scores": scores,
        "sampled_shape": list(sampled.shape),
        "sampled_image": sampled.flatten().tolist(),
    }
    (OUT / "lite0_first_steps.json").write_text(json.dumps(golden) + "\n")
    print(f"lite0: S_c {scores}, |x| max {image.abs().max().item():.4g}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    write_smooth()
    write_lite0()


if __name__ == "__main__":
    main()
