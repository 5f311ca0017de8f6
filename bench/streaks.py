#!/usr/bin/env python3
"""The streak ratio: how strongly an image's spectrum is stamped with a cross of
horizontal and vertical lines (the plaid that MaCo's fixed magnitude printed
onto its images when it was estimated from unwindowed crops).

The image (grey, mean removed) is windowed with a 2-D Hann window; of its FFT
magnitude, the mean on the two frequency axes (kx = 0 and ky = 0, at radii 6 to
N/2 - 6) is divided by the mean on the lines 3 to 5 bins beside them. Natural
photos give about 1 (a tall vertical object more); a cross gives more.

python bench/streaks.py IMAGE... prints each image's ratio and their mean.
"""

import sys

import numpy as np
from PIL import Image

INNER, EDGE = 6, 6
BESIDE = (3, 4, 5)


def streak_ratio(pixels):
    """The streak ratio of an image (H x W or H x W x C, any numeric type)."""
    grey = np.asarray(pixels, dtype=np.float64)
    if grey.ndim == 3:
        grey = grey[..., :3].mean(-1)
    side = min(grey.shape)
    grey = grey[:side, :side]
    grey = grey - grey.mean()
    window = np.hanning(side)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(grey * np.outer(window, window))))
    centre = side // 2
    radii = np.arange(INNER, side // 2 - EDGE + 1)
    axis, beside = [], []
    for sign in (1, -1):
        rows = centre + sign * radii
        axis.extend(spectrum[rows, centre])
        axis.extend(spectrum[centre, rows])
        for offset in BESIDE:
            for side_sign in (1, -1):
                beside.extend(spectrum[rows, centre + side_sign * offset])
                beside.extend(spectrum[centre + side_sign * offset, rows])
    return float(np.mean(axis) / np.mean(beside))


def main():
    ratios = []
    for path in sys.argv[1:]:
        ratio = streak_ratio(Image.open(path).convert("RGB"))
        ratios.append(ratio)
        print(f"{path}: {ratio:.2f}")
    if ratios:
        print(f"mean of {len(ratios)}: {np.mean(ratios):.2f}")


if __name__ == "__main__":
    main()
