#!/usr/bin/env python3
"""Python/PyTorch reference of the Lucid feature-visualisation recipe (Olah et al.,
"Feature Visualization", Distill 2017) for class logits, for comparison with
`classviz --preset natural`.

A 1/f-scaled Fourier spectrum in a decorrelated colour space, squashed into [0,1]
around the model's mean; before every forward pass the image is padded, jittered,
scaled and rotated at random; Adam maximises the class logit. Writes
<out>/<index>.png and prints one JSON line with the wall time.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import LITE0

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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(LITE0))
    parser.add_argument("--classes", required=True)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=Path("/tmp/lucid"))
    # Lucid's own transforms by default; `make bench-natural` passes the natural preset's.
    parser.add_argument("--pad", type=int, default=16)
    parser.add_argument("--jitter", type=int, default=8)
    parser.add_argument("--scale-low", type=float, default=0.9)
    parser.add_argument("--scale-high", type=float, default=1.1)
    parser.add_argument("--degrees", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    started = time.perf_counter()
    model = torch.jit.load(args.model).eval()
    mean = torch.full((3,), 127 / 255)
    std = torch.full((3,), 128 / 255)
    classes = [int(c) for c in args.classes.split(",")]
    h = w = args.size
    scale = spectrum_scale(h, w)
    steps = max(round((args.scale_high - args.scale_low) / 0.02), 1)  # as classviz: one every 0.02
    scales = [args.scale_low + i * (args.scale_high - args.scale_low) / steps for i in range(steps + 1)]
    args.out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(classes), args.batch):
        chunk = torch.tensor(classes[start:start + args.batch])
        spectrum = (torch.randn(len(chunk), 3, h, w // 2 + 1, 2) * 0.01).requires_grad_(True)
        optimiser = torch.optim.Adam([spectrum], lr=args.lr)
        for _ in range(args.steps):
            x = image01(spectrum, scale, h, w, mean)
            x = random_transform(x, args.pad, args.jitter, scales, args.degrees)
            logits = model((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
            loss = -logits.gather(1, chunk.view(-1, 1)).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            final = image01(spectrum, scale, h, w, mean)
        for i, c in enumerate(chunk.tolist()):
            array = (final[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(array).save(args.out / f"{c}.png")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "per_class": seconds / len(classes), "classes": classes}))


if __name__ == "__main__":
    main()
