"""torchvision classifiers: every model of torchvision.models.list_models(module=
torchvision.models), by name, with --kwargs for its factory. Pretrained weights come
from torchvision's cache (downloading them needs internet once); --random-init exports
the untrained architecture, and --checkpoint loads a state dict of your own."""

from classviz.export.common import IMAGENET_MEAN, IMAGENET_STD, LABELS_FILE, Found, fail, first_line


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


def found(args, kwargs):
    arch = args.torchvision
    model, enum = build(arch, kwargs, pretrained=not (args.random_init or args.checkpoint))
    return Found(model=model, name=arch, shape=default_shape(arch, enum), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 what=f"torchvision {arch}", weights=f"pretrained {enum.DEFAULT}" if enum else "pretrained",
                 labels=LABELS_FILE if enum is not None else None, imagenet=enum is not None,
                 prefix_tokens=1 if arch.startswith("vit_") else None, channels_last=arch.startswith("swin"))
