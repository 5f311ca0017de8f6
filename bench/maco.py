#!/usr/bin/env python3
"""The Python/PyTorch reference of classviz's MaCo preset, for benchmarks.

MaCo (Fel et al. 2023) in eager PyTorch, tuned as well as we know how: the same
exported model classviz runs (frozen TorchScript), parameters that need no gradient,
torch.autograd.grad on the phase only, the views of every class batched into one
forward/backward pass, glibc told to keep freed memory (bench/common.py), and the
thread count of the run. The procedure is classviz's, read from classviz itself
(`--dry-run --json`: the resolved style of `--preset maco`), so that the two do the
same work per step:

  - the phase of an rfft2 spectrum over a canvas `canvas` times the input side is
    optimised; the magnitude is the photos' (weights/maco_magnitude.npy), laid on the
    canvas's grid by the nearest stored frequency and scaled to the photos' std;
  - the image is the inverse FFT times MACO_GAIN, mixed from decorrelated colour to
    RGB, squashed by a sigmoid around logit(mean);
  - each step shows `views` square crops of a random fraction (crop_box) of the
    canvas side, centred normally around the canvas centre (σ 0.15 of the side) and
    kept inside, resampled bilinearly to the input, with Gaussian and uniform noise;
  - Adam on the mean of the views' logits; the class image is the central crop at
    the mean crop size.

    .venv/bin/python3 bench/maco.py --classes 1,100 --out /tmp/maco [--steps N] [--threads N]

Prints one JSON line: seconds (wall, model load included), seconds per class, and
the time of each phase of a step (parameterisation, views, forward, backward,
optimiser) in seconds.
"""

import argparse
import json
import math
import subprocess
import time

started = time.perf_counter()

import numpy as np  # noqa: E402  (the imports are part of the timed start-up)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from common import CLASSVIZ, LITE0, WEIGHTS, parse_classes  # noqa: E402
from lucid import COLOUR_SQRT, loop_arguments  # noqa: E402

MACO_GAIN = 4.0  # crates/classviz-core/src/param.rs
CROP_CENTRE_SPREAD = 0.15  # crates/classviz-core/src/views.rs


def preset(model):
    """The resolved MaCo settings, as classviz would run them on this model."""
    out = subprocess.run([CLASSVIZ, "--model", model, "--class", "0", "--preset", "maco", "--dry-run", "--json",
                          "--out", "/tmp/classviz-maco-dry-run"], capture_output=True, text=True, check=True)
    settings = json.loads(out.stdout.splitlines()[0])["settings"]
    return settings


def magnitude_on_grid(values, std, h, w):
    """crates/classviz-core/src/spectrum.rs `Magnitude::on_grid`: nearest stored frequency, scaled to std."""
    rows, columns = values.shape[1], values.shape[2]
    row_index = [round((i / h if i <= h // 2 else (i - h) / h) * rows) % rows for i in range(h)]
    column_index = [min(round(j / w * rows), columns - 1) for j in range(w // 2 + 1)]
    grid = values[:, row_index][:, :, column_index]
    weights = torch.full((w // 2 + 1,), 2.0)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[w // 2] = 1.0
    energy = (grid.square() * weights).sum(dim=(1, 2))
    gain = torch.tensor(std) / (energy / (h * w)).sqrt().clamp_min(1e-12)
    return grid * gain.view(3, 1, 1)


def images01(phase, magnitude, h, w, logit_mean):
    coefficients = torch.polar(magnitude.expand_as(phase), phase)
    signal = torch.fft.irfft2(coefficients, s=(h, w), norm="ortho") * MACO_GAIN
    rgb = torch.einsum("nchw,dc->ndhw", signal, COLOUR_SQRT)
    return torch.sigmoid(rgb + logit_mean)


def crops(count, low, high, ch, cw):
    """`count` MaCo crops as (box side fraction, shift x, shift y) in canvas pixels."""
    drawn = []
    for _ in range(count):
        fraction = low + (high - low) * np.random.rand()
        bw, bh = fraction * cw, fraction * ch
        room_x, room_y = max((cw - bw) / 2, 0), max((ch - bh) / 2, 0)
        spread = CROP_CENTRE_SPREAD * min(cw, ch)
        drawn.append((fraction, float(np.clip(np.random.randn() * spread, -room_x, room_x)),
                      float(np.clip(np.random.randn() * spread, -room_y, room_y))))
    return drawn


def views(images, drawn, size):
    """Each crop of each canvas resampled to the input: [K*N, C, H, W], view-major."""
    n, c, ch, cw = images.shape
    thetas = torch.tensor([[[f, 0.0, 2 * sx / cw], [0.0, f, 2 * sy / ch]] for f, sx, sy in drawn])
    k = len(drawn)
    theta = thetas.unsqueeze(1).expand(k, n, 2, 3).reshape(k * n, 2, 3)
    grid = F.affine_grid(theta, (k * n, c, size, size), align_corners=False)
    return F.grid_sample(images.repeat(k, 1, 1, 1), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(LITE0))
    parser.add_argument("--classes", type=parse_classes, required=True)
    args = loop_arguments(parser, "/tmp/maco")
    settings = preset(args.model)
    style, steps, lr = settings["style"], args.steps or settings["iters"], settings["lr"]
    transforms = style["transforms"]
    size = settings["input"]["shape"][1]
    mean = torch.tensor(settings["input"]["mean"])
    std = torch.tensor(settings["input"]["std"])
    canvas = round(size * transforms["canvas"])
    low, high = transforms["crop_box"]
    noise, view_count = transforms["view_noise"], transforms["views"]
    stored = torch.from_numpy(np.load(WEIGHTS / "maco_magnitude.npy")).float()
    photo_std = json.loads((WEIGHTS / "maco_magnitude.json").read_text())["std"]
    magnitude = magnitude_on_grid(stored, photo_std, canvas, canvas)
    logit_mean = torch.logit(mean.clamp(1e-3, 1 - 1e-3)).view(1, 3, 1, 1)
    model = torch.jit.load(args.model).eval()
    args.out.mkdir(parents=True, exist_ok=True)
    phases = {name: 0.0 for name in ("parameterisation", "views", "forward", "backward", "optimiser")}
    for start in range(0, len(args.classes), args.batch):
        chunk = torch.tensor(args.classes[start:start + args.batch])
        phase = (torch.rand(len(chunk), 3, canvas, canvas // 2 + 1) * 2 * math.pi - math.pi).requires_grad_(True)
        optimiser = torch.optim.Adam([phase], lr=lr)
        targets = chunk.repeat(view_count).view(-1, 1)
        for _ in range(steps):
            marks = [time.perf_counter()]
            x = images01(phase, magnitude, canvas, canvas, logit_mean)
            marks.append(time.perf_counter())
            seen = views(x, crops(view_count, low, high, canvas, canvas), size)
            seen = (seen - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
            seen = seen + torch.randn_like(seen) * noise + (torch.rand_like(seen) * 2 - 1) * noise
            marks.append(time.perf_counter())
            if args.channels_last:
                seen = seen.contiguous(memory_format=torch.channels_last)
            objective = model(seen).gather(1, targets).sum() / view_count
            marks.append(time.perf_counter())
            (gradient,) = torch.autograd.grad(objective, phase)
            marks.append(time.perf_counter())
            with torch.no_grad():
                phase.grad = -gradient
                optimiser.step()
            marks.append(time.perf_counter())
            for name, (a, b) in zip(phases, zip(marks, marks[1:])):
                phases[name] += b - a
        with torch.no_grad():
            final = views(images01(phase, magnitude, canvas, canvas, logit_mean), [((low + high) / 2, 0.0, 0.0)], size)
        for i, c in enumerate(chunk.tolist()):
            array = (final[i].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(array).save(args.out / f"{c}_maco.png")
    seconds = time.perf_counter() - started
    batches = math.ceil(len(args.classes) / args.batch)
    print(json.dumps({"seconds": seconds, "per_class": seconds / len(args.classes), "classes": args.classes,
                      "steps": steps, "views": view_count,
                      "per_step": {k: v / (steps * batches) for k, v in phases.items()}}))


if __name__ == "__main__":
    main()
