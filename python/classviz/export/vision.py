"""torchvision classifiers: every model of torchvision.models.list_models(module=
torchvision.models), by name, with --kwargs for its factory. Pretrained weights come
from torchvision's cache (downloading them needs internet once); --random-init exports
the untrained architecture, and --checkpoint loads a state dict of your own."""

import torch

from classviz.export.common import (
    ESPRESSO, IMAGENET_MEAN, IMAGENET_STD, LABELS_FILE, Source, center_crop_tensor, channel_values, class_count,
    fail, first_line, input_shape, labels_from, load_weights, scores_of,
)


def classifiers():
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def weights_enum(arch):
    import torchvision

    try:
        return torchvision.models.get_model_weights(arch)
    except Exception:
        return None


def default_shape(arch, enum):
    """The input size the architecture's weights are evaluated at (their crop size)."""
    size = 299 if arch.startswith("inception") else 224
    if enum is not None:
        crop = getattr(enum.DEFAULT.transforms(), "crop_size", None)
        if crop:
            size = crop[0] if isinstance(crop, (list, tuple)) else crop
    return [3, size, size]


def build(arch, kwargs, pretrained):
    import torchvision

    if arch not in classifiers():
        close = [m for m in classifiers() if arch.split("_")[0] in m][:6]
        fail(f"--torchvision {arch}: not a torchvision classifier" + (f"; similar: {', '.join(close)}" if close else
             "; torchvision.models.list_models(module=torchvision.models) lists them"))
    enum = weights_enum(arch)
    try:
        weights = enum.DEFAULT if pretrained and enum is not None else None
        model = torchvision.models.get_model(arch, weights=weights, **kwargs)
    except TypeError as err:
        fail(f"--torchvision {arch}: {first_line(err)}; check --kwargs")
    except Exception as err:  # the download fails without network
        fail(f"could not get pretrained {arch} weights ({first_line(err)}); they need internet access once, "
             "or pass --random-init (untrained) or --checkpoint FILE (your own state dict)")
    return model.eval(), enum


def source(args, kwargs):
    arch = args.torchvision
    model, enum = build(arch, kwargs, pretrained=not (args.random_init or args.checkpoint))
    if args.checkpoint:
        load_weights(model, args.checkpoint, arch)
    shape = input_shape(args, default_shape(arch, enum))
    mean, std = channel_values(args, shape[0], IMAGENET_MEAN, IMAGENET_STD)
    classes = class_count(model, shape)
    labels = labels_from(args, classes)
    if labels is None and classes == 1000 and enum is not None:
        labels = LABELS_FILE
    state = ("random initialisation (untrained)" if args.random_init else
             f"weights from {args.checkpoint}" if args.checkpoint else f"pretrained {enum.DEFAULT}")
    check = None
    if not (args.random_init or args.checkpoint) and classes == 1000 and shape[0] == 3:
        check = coffee_check(arch, shape, mean, std)
    return Source(model=model, name=args.name or arch, shape=shape, mean=mean, std=std, labels=labels,
                  description=f"torchvision {arch}, {state}, traced and frozen by classviz-export",
                  prefix_tokens=1 if arch.startswith("vit_") else None, check=check,
                  channels_last=arch.startswith("swin"))


def coffee_check(arch, shape, mean, std):
    """Pretrained ImageNet weights must see scikit-image's coffee() photo as espresso."""

    def check(frozen):
        from skimage import data

        with torch.no_grad():
            top1 = int(scores_of(frozen(center_crop_tensor(data.coffee(), shape, mean, std))).argmax())
        if top1 != ESPRESSO:
            fail(f"{arch}: coffee() photo classified as {top1}, expected {ESPRESSO} (espresso)")

    return check
