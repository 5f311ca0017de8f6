"""timm classifiers, `--timm NAME` with --kwargs for timm.create_model: the mean, std
and input size come from the model's pretrained config. timm downloads its weights from
the Hugging Face hub, which the export never does: it uses the hub's local cache if the
weights are there, else --checkpoint FILE (a state dict or .safetensors) or
--random-init."""

import os

from classviz.export.common import LABELS_FILE, Found, fail, first_line


def timm_module():
    try:
        import timm
    except ImportError:
        fail("--timm needs the timm package: pip install timm")
    return timm


def build(name, kwargs, pretrained):
    timm = timm_module()
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:6]
        fail(f"--timm {name}: not a timm model" + (f"; similar: {', '.join(close)}" if close else ""))
    if pretrained:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs).eval()
    except TypeError as err:
        fail(f"--timm {name}: {first_line(err)}; check --kwargs")
    except Exception as err:
        if pretrained:
            fail(f"--timm {name}: its pretrained weights are not in the local Hugging Face cache ({first_line(err)}); "
                 "pass --checkpoint FILE (a state dict or .safetensors) or --random-init")
        fail(f"--timm {name}: {first_line(err)}")


def pretrained_config(model):
    """(mean, std, [C, H, W]) from the model's pretrained config; the size is the patch
    embedding's where --kwargs changed it (img_size)."""
    timm = timm_module()
    config = timm.data.resolve_data_config({}, model=model)
    shape = list(config["input_size"])
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is not None:
        shape[1:] = [size, size] if isinstance(size, int) else list(size)
    return list(config["mean"]), list(config["std"]), shape


def found(args, kwargs):
    name = args.timm
    model = build(name, kwargs, pretrained=not (args.random_init or args.checkpoint))
    mean, std, shape = pretrained_config(model)
    return Found(model=model, name=name, shape=shape, mean=mean, std=std, what=f"timm {name}",
                 weights="pretrained (local cache)", labels=LABELS_FILE,
                 prefix_tokens=getattr(model, "num_prefix_tokens", None),
                 channels_last=str(getattr(model, "output_fmt", "")).upper() == "NHWC")
