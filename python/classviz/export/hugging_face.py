"""Hugging Face transformers image classifiers from a local folder, `--hf DIR`: its
config.json and weights (model.safetensors), and preprocessor_config.json if there is
one (mean, std and size); the labels come from the config's id2label. Nothing is
downloaded. --random-init builds the architecture from config.json alone."""

import json
import re
from pathlib import Path

import torch

from classviz.export.common import Found, fail, first_line

# Hugging Face's own defaults where a folder has no preprocessor config (ViT's).
DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5
DEFAULT_SIZE = 224


def transformers_module():
    try:
        import transformers
    except ImportError:
        fail("--hf needs the transformers package: pip install transformers")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def build(folder, random_init):
    transformers = transformers_module()
    if not (folder / "config.json").is_file():
        fail(f"--hf {folder}: no config.json there (save the model with save_pretrained)")
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
        if random_init:
            torch.manual_seed(0)
            model = transformers.AutoModelForImageClassification.from_config(config)
        else:
            model = transformers.AutoModelForImageClassification.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:
        fail(f"--hf {folder}: not an image classifier transformers can load offline ({first_line(err)}); "
             "--random-init builds it from config.json alone")
    # Eager attention: the fused kernels' backward is not available everywhere.
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except Exception:
            pass
    return model.eval(), config


def preprocessing(folder, config):
    """(mean, std, [C, H, W]) from preprocessor_config.json, else the config."""
    channels = getattr(config, "num_channels", 3)
    size = getattr(config, "image_size", DEFAULT_SIZE)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    mean, std = [DEFAULT_MEAN] * channels, [DEFAULT_STD] * channels
    path = folder / "preprocessor_config.json"
    if path.is_file():
        pre = json.loads(path.read_text())
        if pre.get("do_normalize", True):
            mean = list(pre.get("image_mean", mean))
            std = list(pre.get("image_std", std))
        else:
            mean, std = [0.0] * channels, [1.0] * channels
        size = pre.get("crop_size") if pre.get("do_center_crop") else pre.get("size")
        if isinstance(size, dict):
            height = size.get("height", size.get("shortest_edge", height))
            width = size.get("width", size.get("shortest_edge", width))
        elif isinstance(size, int):
            height = width = size
    return mean, std, [channels, height, width]


def labels_of(config):
    """id2label as a list, unless the names are transformers' placeholders (LABEL_k)."""
    mapping = getattr(config, "id2label", None) or {}
    names = [mapping.get(i, mapping.get(str(i))) for i in range(len(mapping))]
    if not names or any(n is None for n in names) or all(re.fullmatch(r"LABEL_\d+", n) for n in names):
        return None
    return names


def prefix_tokens(model):
    """Prefix tokens before the patches: a class token, and DeiT's distillation token."""
    config = model.config
    if getattr(config, "model_type", "") in ("swin", "swinv2", "convnext", "convnextv2", "resnet", "regnet"):
        return None
    if getattr(config, "model_type", "") == "deit":
        return 2
    return 1 if getattr(config, "model_type", "") in ("vit", "beit", "data2vec-vision", "dinov2") else None


def found(args, kwargs):
    folder = Path(args.hf)
    model, config = build(folder, args.random_init)
    mean, std, shape = preprocessing(folder, config)
    return Found(model=model, name=re.sub(r"[^A-Za-z0-9_.-]+", "_", folder.resolve().name), shape=shape, mean=mean,
                 std=std, what=f"transformers {type(model).__name__}", weights=f"weights from {folder}",
                 labels=labels_of(config), prefix_tokens=prefix_tokens(model))
