#!/usr/bin/env python3
"""Python/PyTorch reference of the Lucid feature-visualisation recipe (Olah et al.,
"Feature Visualization", Distill 2017) for class logits, for comparison with
`classviz --preset natural`.

A 1/f-scaled Fourier spectrum in a decorrelated colour space, squashed into [0,1]
around the model's mean; before every forward pass the image is padded, jittered,
scaled and rotated at random (one draw per view, the views batched); Adam maximises
the class logit (or the centred logit). The settings are classviz's natural preset as
`classviz --dry-run` resolves it (with --preset-flags), so that the two do the same
work per step. Writes <out>/<index>_lucid.png and prints one JSON line with the wall
time and each phase of a step.
"""

import argparse
import shlex
import subprocess
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import CLASSVIZ, LITE0

# The square root of ImageNet's colour covariance (as used by Lucid), columns scaled
# so that the largest has unit norm.
COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_SQRT = COLOUR_SQRT / COLOUR_SQRT.norm(dim=0).max()


def spectrum_scale(h, w):
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return 1.0 / torch.sqrt(fx * fx + fy * fy).clamp_min(1.0 / max(h, w))


def image01(spectrum, scale, h, w, mean):
    coeffs = torch.view_as_complex(spectrum) * scale
    y = torch.fft.irfft2(coeffs, s=(h, w), norm="ortho") / 4.0
    y = torch.einsum("bchw,dc->bdhw", y, COLOUR_SQRT)
    return torch.sigmoid(y + torch.logit(mean).view(1, -1, 1, 1))


def random_transform(x, pad, jitter, scales, degrees):
    b, c, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    s = scales[np.random.randint(len(scales))]
    angle = math.radians(np.random.uniform(-degrees, degrees))
    tx, ty = np.random.randint(-jitter, jitter + 1, 2)
    ph, pw = h + 2 * pad, w + 2 * pad
    cos, sin = math.cos(angle) / s, math.sin(angle) / s
    theta = torch.tensor([[cos * w / pw, -sin * h / pw, 2 * tx / pw], [sin * w / ph, cos * h / ph, 2 * ty / ph]],
                         dtype=x.dtype, device=x.device).unsqueeze(0).expand(b, 2, 3)
    grid = F.affine_grid(theta, (b, c, h, w), align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def preset_settings(model, extra):
    """classviz's resolved natural preset (with `extra` flags) for this model: the
    reference then does the same work per step as classviz."""
    out = subprocess.run([CLASSVIZ, "--model", model, "--class", "0", "--preset", "natural", *extra, "--dry-run",
                          "--json", "--out", "/tmp/classviz-lucid-dry-run"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[0])["settings"]


def loop_arguments(parser, out):
    """The arguments every reference loop takes (steps, batch, threads, channels-last,
    out) beside `parser`'s own, parsed; torch's threads set and the generators seeded."""
    parser.add_argument("--steps", type=int, help="(default: the preset's)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="feed the network NHWC (CPU convolutions run faster on it)")
    parser.add_argument("--out", type=Path, default=Path(out))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    return args


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(LITE0))
    parser.add_argument("--classes", required=True)
    parser.add_argument("--preset-flags", default="", help="flags that change classviz's natural preset, as for "
                        "classviz (the reference reads the resolved settings from `classviz --dry-run`)")
    args = loop_arguments(parser, "/tmp/lucid")
    started = time.perf_counter()
    settings = preset_settings(args.model, shlex.split(args.preset_flags))
    transforms = settings["style"]["transforms"]
    steps, lr = args.steps or settings["iters"], settings["lr"]
    centred = settings["objective"] == "centred-logit"
    model = torch.jit.load(args.model).eval()
    mean = torch.tensor(settings["input"]["mean"])
    std = torch.tensor(settings["input"]["std"])
    classes = [int(c) for c in args.classes.split(",")]
    h, w = settings["input"]["shape"][1:]
    scale = spectrum_scale(h, w)
    views = transforms["views"]
    args.out.mkdir(parents=True, exist_ok=True)
    phases = {name: 0.0 for name in ("parameterisation", "views", "forward", "backward", "optimiser")}
    for start in range(0, len(classes), args.batch):
        chunk = torch.tensor(classes[start:start + args.batch])
        targets = chunk.repeat(views).view(-1, 1)
        spectrum = (torch.randn(len(chunk), 3, h, w // 2 + 1, 2) * 0.01).requires_grad_(True)
        optimiser = torch.optim.Adam([spectrum], lr=lr)
        for _ in range(steps):
            marks = [time.perf_counter()]
            x = image01(spectrum, scale, h, w, mean)
            marks.append(time.perf_counter())
            x = torch.cat([random_transform(x, transforms["pad"], transforms["jitter"], transforms["scales"],
                                            transforms["rotate"]) for _ in range(views)])
            x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
            marks.append(time.perf_counter())
            logits = model(x.contiguous(memory_format=torch.channels_last) if args.channels_last else x)
            if centred:
                logits = logits - logits.mean(1, keepdim=True)
            loss = -logits.gather(1, targets).sum() / views
            marks.append(time.perf_counter())
            optimiser.zero_grad()
            loss.backward()
            marks.append(time.perf_counter())
            optimiser.step()
            marks.append(time.perf_counter())
            for name, (a, b) in zip(phases, zip(marks, marks[1:])):
                phases[name] += b - a
        with torch.no_grad():
            final = image01(spectrum, scale, h, w, mean)
        for i, c in enumerate(chunk.tolist()):
            array = (final[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(array).save(args.out / f"{c}_lucid.png")
    seconds = time.perf_counter() - started
    total_steps = steps * math.ceil(len(classes) / args.batch)
    print(json.dumps({"seconds": seconds, "per_class": seconds / len(classes), "classes": classes,
                      "per_step": {k: v / total_steps for k, v in phases.items()}}))


if __name__ == "__main__":
    main()
