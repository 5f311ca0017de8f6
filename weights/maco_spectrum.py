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

Writes weights/maco_magnitude.npy: float32 [3, SIZE, SIZE/2 + 1], in rfft2
layout (rows in fftfreq order), and weights/maco_magnitude.json, which records
the photos, the crop count, and the photos' mean standard deviation per
decorrelated channel (classviz scales its images to it).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 256
CROPS = 48
SEED = 0
OUT = Path(__file__).resolve().parent
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


def main():
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
            side = int(rng.integers(SIZE // 2, min(h, w) + 1))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = x[:, top:top + side, left:left + side].unsqueeze(0)
            crop = F.interpolate(crop, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0]
            if rng.random() < 0.5:
                crop = crop.flip(-1)
            crop = crop - crop.mean(dim=(1, 2), keepdim=True)
            stds.append(crop.std(dim=(1, 2)).numpy())
            total += torch.fft.rfft2(crop, norm="ortho").abs().numpy()
            count += 1
    magnitude = (total / count).astype(np.float32)
    magnitude[:, 0, 0] = 0.0  # no DC: the image's mean is the model's mean
    if not (np.isfinite(magnitude).all() and (magnitude[:, 1:, :] > 0).all()):
        sys.exit("maco_spectrum.py: the magnitude is not finite and positive")
    np.save(OUT / "maco_magnitude.npy", magnitude)
    (OUT / "maco_magnitude.json").write_text(json.dumps({
        "source": "weights/maco_spectrum.py",
        "photos": names,
        "crops_per_photo": CROPS,
        "size": SIZE,
        "seed": SEED,
        "std": np.mean(stds, axis=0).tolist(),
    }, indent=2))
    print(f"{OUT / 'maco_magnitude.npy'}: [3, {SIZE}, {SIZE // 2 + 1}] from {count} crops of {len(names)} photos",
          file=sys.stderr)


if __name__ == "__main__":
    main()
