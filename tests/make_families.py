#!/usr/bin/env python3
"""Export the model-family fixtures of tests/families.rs through weights/export.py, as a
user would: torchvision, timm and Hugging Face classifiers (untrained, small inputs or
small configurations, so that CI can afford them) and the digits ViT and CNN that
tests/make_models.py trained. Writes tests/models/families/ and its index.json, one
entry per fixture: the family, the model file, the source, and whether it has
randomised variants (saliency --sanity), a compiled package (--engine compiled) and
attention taps (the rollouts).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "models"
OUT = MODELS / "families"
EXPORT = [sys.executable, str(ROOT / "weights" / "export.py")]

SMALL = ["--random-init", "--input-shape", "3,64,64"]
TIMM_VIT = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}

# (family, source, export arguments, taps, extra: randomise / compile / attention, the
# transformers' attention probabilities as taps for the rollouts)
FAMILIES = [
    ("ResNet", "torchvision", ["--torchvision", "resnet18", *SMALL], "layer3,layer4", []),
    ("ConvNeXt", "torchvision", ["--torchvision", "convnext_tiny", *SMALL], "features.5,features.7", ["--compile"]),
    ("Swin", "torchvision", ["--torchvision", "swin_t", *SMALL], "features.5,features.7", []),
    ("EfficientNetV2", "torchvision", ["--torchvision", "efficientnet_v2_s", *SMALL], "features.5,features.7", []),
    ("MobileNetV3", "torchvision", ["--torchvision", "mobilenet_v3_small", *SMALL], "features.6,features.12",
     ["--randomise"]),
    ("RegNet", "torchvision", ["--torchvision", "regnet_y_400mf", *SMALL], "trunk_output.block3,trunk_output.block4", []),
    ("ViT (trained on digits)", "torchvision", "digits_vit", "encoder.layers.encoder_layer_0,encoder.layers.encoder_layer_1",
     ["--randomise", "--compile", "--attention"]),
    ("CNN (trained on digits)", "own module", "digits_cnn", "4,7", ["--randomise"]),
    # Its last block is tapped too: its patch tokens never reach the class token.
    ("ViT", "timm", ["--timm", "vit_tiny_patch16_224", "--kwargs", json.dumps(TIMM_VIT), "--random-init"],
     "patch_embed,blocks.0,blocks.1", ["--attention"]),
    ("DeiT (distilled)", "timm", ["--timm", "deit_tiny_distilled_patch16_224", "--kwargs", json.dumps(TIMM_VIT),
                                  "--random-init"], "patch_embed,blocks.0", ["--compile"]),
    ("ViT with registers, pooled", "timm",
     ["--timm", "vit_small_patch16_224", "--kwargs",
      json.dumps({**TIMM_VIT, "reg_tokens": 4, "class_token": False, "global_pool": "avg"}), "--random-init"],
     "patch_embed,blocks.0", ["--attention"]),
    ("ViT, non-square input", "timm",
     ["--timm", "vit_tiny_patch16_224", "--kwargs", json.dumps({**TIMM_VIT, "img_size": [32, 48]}), "--random-init"],
     "patch_embed,blocks.0", []),
    ("ConvNeXt", "timm", ["--timm", "convnext_tiny", "--kwargs", json.dumps({"depths": [1, 1, 1, 1], "dims": [8, 16, 24, 32]}),
                          "--random-init", "--input-shape", "3,64,64"], "stages.2,stages.3", []),
    ("Swin", "timm", ["--timm", "swin_tiny_patch4_window7_224", "--kwargs",
                      json.dumps({"img_size": 64, "embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4}),
                      "--random-init"], "layers.0,layers.1", ["--compile"]),
    ("ViT", "Hugging Face", "hf_vit", "vit.layers.0", ["--attention"]),
    ("Swin", "Hugging Face", "hf_swin", "swin.encoder.layers.0,swin.encoder.layers.1", []),
]


def hugging_face(kind):
    """A small transformers classifier saved with save_pretrained, as a user's folder."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    folder = MODELS / f"hf_{kind}"
    torch.manual_seed(0)
    labels = {i: name for i, name in enumerate(["cat", "dog", "bird", "fish", "frog"])}
    if kind == "vit":
        config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, id2label=labels)
        model = transformers.ViTForImageClassification(config)
    else:
        config = transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                         window_size=4, id2label=labels)
        model = transformers.SwinForImageClassification(config)
    model.save_pretrained(folder)
    preprocessor = {"do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                    "do_resize": True, "size": {"height": 32, "width": 32}}
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return ["--hf", str(folder)]


def digits(kind):
    pair = json.loads((MODELS / "digits_pair.json").read_text())
    common = ["--checkpoint", str(MODELS / f"digits_{kind}_state.pt"), "--input-shape", "3,32,32",
              "--mean", str(pair["mean"]), "--std", str(pair["std"]), "--labels", str(MODELS / "digits_labels.txt")]
    if kind == "vit":
        return ["--entry", "torchvision.models.vision_transformer:VisionTransformer",
                "--kwargs", json.dumps(pair["vit"]), "--name", "digits_vit", *common]
    return ["--entry", "tests.checkpoint_module:digits_cnn", "--name", "digits_cnn", *common]


def arguments(source):
    if isinstance(source, list):
        return source
    if source.startswith("hf_"):
        return hugging_face(source[3:])
    return digits(source.split("_")[1])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    index = []
    for number, (family, origin, source, taps, extra) in enumerate(FAMILIES):
        name = f"f{number:02d}"
        args = arguments(source)
        if "--name" not in args:
            args = [*args, "--name", name]
        stem = args[args.index("--name") + 1]
        command = [*EXPORT, *args, "--taps", taps, *extra, "--out", str(OUT)]
        started = time.time()
        subprocess.run(command, check=True, cwd=ROOT)
        print(f"make_families.py: {family} ({origin}) in {time.time() - started:.0f} s", file=sys.stderr)
        index.append({"family": family, "source": origin, "model": f"{stem}_taps.pt", "taps": taps.split(","),
                      "randomised": "--randomise" in extra, "compiled": "--compile" in extra,
                      "attention": "--attention" in extra})
    (OUT / "index.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
