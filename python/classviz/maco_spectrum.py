#!/usr/bin/env python3
"""The average Fourier magnitude spectrum of natural photos, for classviz's
MaCo parameterisation (Fel et al. 2023, "Unlocking Feature Visualization for
Deeper Networks with MAgnitude Constrained Optimization", arXiv 2306.06805).

MaCo optimises only the Fourier phase of an image and fixes its magnitude to
that of natural images. Nothing can be downloaded at run time, so the
magnitude is computed here from the colour photos that scikit-image and
scikit-learn ship with their packages: scikit-image's astronaut, chelsea,
coffee, rocket and motorcycle_left (data.stereo_motorcycle) and scikit-learn's
load_sample_images (china.jpg, flower.jpg).

Each photo is taken to [0,1], its per-channel mean removed, and its colours
decorrelated with the inverse of the ImageNet colour square root that classviz's
Fourier parameterisations use (so that classviz re-correlates them exactly).
From every photo CROPS random square crops of SIZE pixels (and their mirror
images) are taken at random scales; the magnitude of each channel's 2-D real
FFT (orthonormal) is averaged over all crops.

A crop's opposite edges do not match, and the FFT sees the jump as a sharp
edge: unhandled, it puts a strong cross on the axes of every crop's spectrum,
and MaCo, which fixes the magnitude, stamps that cross onto every image as a
plaid of horizontal and vertical streaks. --method chooses how it is removed:
periodic (the default: Moisan 2011's periodic-plus-smooth decomposition keeps
the crop's periodic component, which has no boundary jump), hann (a 2-D Hann
window, its energy restored), or none (the old, unwindowed estimate).
docs/benchmarks.md has the measurement that chose the default.

Writes --out (weights/maco_magnitude.npy from the project): float32 [3, SIZE, SIZE/2 + 1], in rfft2
layout (rows in fftfreq order), and weights/maco_magnitude.json, which records
the photos, the crop count, and the photos' mean standard deviation per
decorrelated channel (classviz scales its images to it).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 256
CROPS = 48
SEED = 0

COLOUR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_SQRT = COLOUR_SQRT / np.linalg.norm(COLOUR_SQRT, axis=0).max()


def photos():
    from skimage import data
    from sklearn.datasets import load_sample_images

    named = {
        "skimage astronaut": data.astronaut(),
        "skimage chelsea": data.chelsea(),
        "skimage coffee": data.coffee(),
        "skimage rocket": data.rocket(),
        "skimage motorcycle_left": data.stereo_motorcycle()[0],
    }
    for name, image in zip(load_sample_images().filenames, load_sample_images().images):
        named[f"sklearn {Path(name).name}"] = image
    return named


def periodic_component(crop):
    """Moisan's periodic component of each channel of `crop` [C, N, N]: the image
    minus its smooth component, the solution of a Poisson equation whose source is
    the jumps across the image's opposite edges."""
    channels, rows, columns = crop.shape
    jumps = torch.zeros_like(crop)
    jumps[:, 0, :] += crop[:, -1, :] - crop[:, 0, :]
    jumps[:, -1, :] += crop[:, 0, :] - crop[:, -1, :]
    jumps[:, :, 0] += crop[:, :, -1] - crop[:, :, 0]
    jumps[:, :, -1] += crop[:, :, 0] - crop[:, :, -1]
    q = torch.arange(rows, dtype=crop.dtype).view(-1, 1)
    r = torch.arange(columns, dtype=crop.dtype).view(1, -1)
    denominator = 2 * torch.cos(2 * np.pi * q / rows) + 2 * torch.cos(2 * np.pi * r / columns) - 4
    denominator[0, 0] = 1.0
    smooth_hat = torch.fft.fft2(jumps) / denominator
    smooth_hat[:, 0, 0] = 0.0
    return crop - torch.fft.ifft2(smooth_hat).real


def prepared(crop, method):
    """The crop as the spectrum sees it: its periodic component, or Hann-windowed
    (scaled so that its energy is kept), or as it is."""
    if method == "periodic":
        return periodic_component(crop)
    if method == "hann":
        window = torch.hann_window(crop.shape[-1], periodic=False, dtype=crop.dtype)
        window2d = torch.outer(window, window)
        return crop * window2d / window2d.square().mean().sqrt()
    return crop


def main(default_out):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=("periodic", "hann", "none"), default="periodic")
    parser.add_argument("--turned", type=float, default=TURNED,
                        help=f"the fraction of crops turned by a random angle (default {TURNED})")
    parser.add_argument("--out", type=Path, default=Path(default_out) / "maco_magnitude.npy")
    args = parser.parse_args()
    write(args.out, args.method, args.turned)


# The fraction of crops turned by a random angle before the FFT (docs/benchmarks.md).
TURNED = 1.0


def straight_crop(x, rng):
    """A random square crop of x [C, H, W] at a random scale, resized to SIZE."""
    h, w = x.shape[1:]
    side = int(rng.integers(SIZE // 2, min(h, w) + 1))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = x[:, top:top + side, left:left + side].unsqueeze(0)
    return F.interpolate(crop, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]


def rotated_crop(x, rng):
    """A random square crop of x turned by a random angle in [0, 90) degrees (a turn
    of 90 maps the axes onto themselves), resized to SIZE: photos' horizontal and
    vertical lines then spread over every orientation, as in a random photo."""
    h, w = x.shape[1:]
    angle = rng.random() * np.pi / 2
    reach = np.cos(angle) + np.sin(angle)
    side = int(rng.integers(SIZE // 2, int(min(h, w) / np.sqrt(2)) + 1))
    big = int(np.ceil(side * reach))
    top, left = int(rng.integers(0, h - big + 1)), int(rng.integers(0, w - big + 1))
    region = x[:, top:top + big, left:left + big].unsqueeze(0)
    scale = side / big
    theta = torch.tensor([[[np.cos(angle) * scale, -np.sin(angle) * scale, 0.0],
                           [np.sin(angle) * scale, np.cos(angle) * scale, 0.0]]], dtype=x.dtype)
    grid = F.affine_grid(theta, [1, x.shape[0], SIZE, SIZE], align_corners=False)
    return F.grid_sample(region, grid, mode="bicubic", align_corners=False)[0]


def write(out, method, rotate=TURNED):
    """Estimate the spectrum with `method` and write it to `out` (.npy) and its JSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    decorrelate = np.linalg.inv(COLOUR_SQRT)
    total = np.zeros((3, SIZE, SIZE // 2 + 1))
    stds = []
    count = 0
    names = []
    for name, image in photos().items():
        x = torch.tensor(image[..., :3], dtype=torch.float64).permute(2, 0, 1) / 255.0
        x = x - x.mean(dim=(1, 2), keepdim=True)
        x = torch.einsum("dc,chw->dhw", torch.tensor(decorrelate), x)
        names.append(f"{name} ({image.shape[1]}x{image.shape[0]})")
        h, w = x.shape[1:]
        for _ in range(CROPS):
            crop = rotated_crop(x, rng) if rng.random() < rotate else straight_crop(x, rng)
            if rng.random() < 0.5:
                crop = crop.flip(-1)
            crop = crop - crop.mean(dim=(1, 2), keepdim=True)
            stds.append(crop.std(dim=(1, 2)).numpy())
            total += torch.fft.rfft2(prepared(crop, method), norm="ortho").abs().numpy()
            count += 1
    magnitude = (total / count).astype(np.float32)
    magnitude[:, 0, 0] = 0.0  # no DC: the image's mean is the model's mean
    if not (np.isfinite(magnitude).all() and (magnitude[:, 1:, :] > 0).all()):
        sys.exit("maco_spectrum.py: the magnitude is not finite and positive")
    np.save(out, magnitude)
    out.with_suffix(".json").write_text(json.dumps({
        "source": "weights/maco_spectrum.py",
        "method": {"periodic": "periodic-plus-smooth decomposition (Moisan 2011)",
                   "hann": "Hann-windowed crops", "none": "unwindowed crops"}[method]
        + (f", {rotate:.0%} of the crops turned by random angles" if rotate else ""),
        "photos": names,
        "crops_per_photo": CROPS,
        "size": SIZE,
        "seed": SEED,
        "std": np.mean(stds, axis=0).tolist(),
    }, indent=2))
    print(f"{out}: [3, {SIZE}, {SIZE // 2 + 1}] from {count} crops of {len(names)} photos, {method}",
          file=sys.stderr)


if __name__ == "__main__":
    main(Path.cwd())
