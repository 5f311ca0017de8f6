#!/usr/bin/env python3
"""Every model family at full size, end to end: the matrix of docs/models.md.

For each family (untrained: pretrained weights are not reachable here, so this checks
the machinery, not the pictures), export it with two taps through weights/export.py,
then run classviz on it: info, the paper's preset, natural, MaCo, a channel unit, two
facets, `saliency --method all` (with the CAMs), `--sanity` (against --randomise
variants) and the compiled engine (--compile). Each cell is ✓ or ✗ with the first line
classviz (or the exporter) printed. Steps are few (the pictures of an untrained network
mean nothing); what is checked is that every command runs on every family.

    .venv/bin/python3 bench/model_matrix.py [--only NAME,...] [--out DIR]

About an hour and a half on 2 cores (the compiles and Score-CAM over every channel
take most of it). torchvision initialises a ViT's head to zero, so that row is exported
from a state dict whose head is drawn at random (its scores would not depend on the
input otherwise).
"""

import argparse
import json
import sys
from pathlib import Path

from common import PYTHON, ROOT, attempt
import common

CLASSVIZ = common.CLASSVIZ  # --classviz overrides
PHOTO = str(ROOT / "tests" / "data" / "coffee.png")

# (row, family, source arguments, taps)
ROWS = [
    ("resnet", "torchvision ResNet-50", ["--torchvision", "resnet50"], "layer3,layer4"),
    ("convnext", "torchvision ConvNeXt-T", ["--torchvision", "convnext_tiny"], "features.5,features.7"),
    ("vit", "torchvision ViT-B/16", ["--torchvision", "vit_b_16"], "encoder.layers.encoder_layer_9,encoder.layers.encoder_layer_10"),
    ("swin", "torchvision Swin-T", ["--torchvision", "swin_t"], "features.5,features.7"),
    ("effv2", "torchvision EfficientNetV2-S", ["--torchvision", "efficientnet_v2_s"], "features.5,features.7"),
    ("mbv3", "torchvision MobileNetV3-L", ["--torchvision", "mobilenet_v3_large"], "features.12,features.16"),
    ("regnet", "torchvision RegNetY-800MF", ["--torchvision", "regnet_y_800mf"], "trunk_output.block3,trunk_output.block4"),
    ("densenet", "torchvision DenseNet-121 (unnamed by the issue)", ["--torchvision", "densenet121"], "features.denseblock3,features.denseblock4"),
    ("inception", "torchvision Inception-v3, 299 (unnamed)", ["--torchvision", "inception_v3"], "Mixed_6e,Mixed_7c"),
    ("maxvit", "torchvision MaxViT-T (unnamed)", ["--torchvision", "maxvit_t"], "blocks.2,blocks.3"),
    ("swinv2", "torchvision Swin-V2-T", ["--torchvision", "swin_v2_t"], "features.5,features.7"),
    ("timm-vit", "timm ViT-S/16", ["--timm", "vit_small_patch16_224"], "blocks.9,blocks.10"),
    ("timm-deit", "timm DeiT-S distilled", ["--timm", "deit_small_distilled_patch16_224"], "blocks.9,blocks.10"),
    ("timm-convnext", "timm ConvNeXt-T", ["--timm", "convnext_tiny"], "stages.2,stages.3"),
    ("timm-reg", "timm ViT-S/16 with 4 registers at 384 (unnamed)", ["--timm", "vit_small_patch16_384", "--kwargs", '{"reg_tokens": 4}'], "blocks.9,blocks.10"),
    ("timm-swin", "timm Swin-T (unnamed)", ["--timm", "swin_tiny_patch4_window7_224"], "layers.2,layers.3"),
    ("timm-mobilevit", "timm MobileViT-S (a hybrid), 256", ["--timm", "mobilevit_s"], "stages.3,stages.4"),
    ("hf-vit", "Hugging Face ViT-B/16", "hf-vit", "vit.layers.9,vit.layers.10"),
    ("hf-deit", "Hugging Face DeiT-S distilled (unnamed)", "hf-deit", "deit.layers.9,deit.layers.10"),
    ("hf-convnext", "Hugging Face ConvNeXt-T", "hf-convnext",
     "convnext.encoder.stages.2,convnext.encoder.stages.3"),
]

COLUMNS = ["export", "info", "paper", "natural", "maco", "unit", "facets", "saliency all", "sanity", "compile"]


def run(command, timeout=3600):
    """(succeeded, why not, seconds) of one cell's command."""
    return attempt(command, timeout)[:3]


def hugging_face(kind, folder):
    """A full-size transformers classifier saved as a user's folder (random weights)."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "hf-vit":
        config = transformers.ViTConfig(num_labels=1000)
        model = transformers.ViTForImageClassification(config)
    elif kind == "hf-deit":
        config = transformers.DeiTConfig(num_labels=1000, hidden_size=384, num_attention_heads=6,
                                         intermediate_size=1536)
        model = transformers.DeiTForImageClassificationWithTeacher(config)
    else:
        config = transformers.ConvNextConfig(num_labels=1000)
        model = transformers.ConvNextForImageClassification(config)
    model.save_pretrained(folder)
    return ["--hf", str(folder)]


def vit_checkpoint(path):
    """torchvision's ViT-B/16 with its zero-initialised head drawn at random."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.vit_b_16()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    torch.save(model.state_dict(), path)
    return ["--checkpoint", str(path)]


def export_arguments(key, source, out):
    if isinstance(source, str):
        return hugging_face(source, out / source)
    if key == "vit":
        return [*source, *vit_checkpoint(out / "vit_b_16_head.pt")]
    return [*source, "--random-init"]


def classviz_cells(model, out, taps):
    first = taps.split(",")[0]
    base = [CLASSVIZ, "--model", str(model), "--quiet"]
    runs = {
        "info": [CLASSVIZ, "info", "--model", str(model)],
        "paper": [*base, "--class", "1,2", "--iters", "5", "--out", str(out / "paper")],
        "natural": [*base, "--class", "1,2", "--preset", "natural", "--iters", "5", "--out", str(out / "natural")],
        "maco": [*base, "--class", "1", "--preset", "maco", "--iters", "3", "--out", str(out / "maco")],
        "unit": [*base, "--objective", f"channel:{first}:1", "--iters", "5", "--out", str(out / "unit")],
        "facets": [*base, "--class", "1", "--facets", "2", "--iters", "3", "--out", str(out / "facets")],
        "saliency all": [CLASSVIZ, "saliency", "--model", str(model), "--image", PHOTO, "--method", "all",
                         "--random-orders", "2", "--samples", "2", "--steps", "2", "--out", str(out / "saliency")],
        "sanity": [CLASSVIZ, "saliency", "--model", str(model), "--image", PHOTO, "--sanity", "--method", "grad-cam",
                   "--out", str(out / "sanity")],
        "compile": [*base, "--class", "1", "--engine", "compiled", "--iters", "3", "--out", str(out / "compiled")],
    }
    return runs


def row(key, family, source, taps, out):
    out = out / key
    out.mkdir(parents=True, exist_ok=True)
    args = export_arguments(key, source, out)
    export = [PYTHON, str(ROOT / "weights" / "export.py"), *args, "--name", key, "--taps", taps, "--out", str(out)]
    cells = {}
    ok, why, seconds, stderr = attempt([*export, "--randomise", "--compile"], timeout=7200)
    cells["export"] = (ok, why, seconds)
    if not ok:
        return cells
    warning = [line.split("warning: ", 1)[-1] for line in stderr.splitlines() if "no compiled package" in line]
    model = out / f"{key}_taps.pt"
    compiled = json.loads(model.with_suffix(".json").read_text()).get("compiled")
    for column, command in classviz_cells(model, out, taps).items():
        cells[column] = run(command)
        if column == "compile" and not compiled:
            cells[column] = (False, warning[0][:240] if warning else "no package", 0)
    return cells


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated row keys")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "model-matrix")
    parser.add_argument("--classviz", default=CLASSVIZ, help="the binary to run (default: the project's release build)")
    args = parser.parse_args()
    globals()["CLASSVIZ"] = args.classviz
    only = set(args.only.split(",")) if args.only else None
    print("| family | " + " | ".join(COLUMNS) + " |")
    print("| --- |" + " :-: |" * len(COLUMNS))
    notes = []
    for key, family, source, taps in ROWS:
        if only and key not in only:
            continue
        cells = row(key, family, source, taps, args.out)
        marks = []
        for column in COLUMNS:
            ok, why, seconds = cells.get(column, (False, "not run: the export failed", 0))
            marks.append("✓" if ok else "✗")
            if not ok:
                notes.append(f"- {family}, {column}: {why}")
        print(f"| {family} | " + " | ".join(marks) + " |", flush=True)
        print(f"  {key}: " + ", ".join(f"{c} {cells[c][2]:.0f} s" for c in COLUMNS if c in cells), file=sys.stderr)
    print()
    print("\n".join(notes) if notes else "every cell ✓")


if __name__ == "__main__":
    main()
