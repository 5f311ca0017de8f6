"""What every model source shares: one-line failures, the scores of any output, tracing
that is checked against the eager model, the files and the sidecar."""

import copy
import os
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image

from classviz import sidecar as sidecars
from classviz.export import attention
from classviz.export import taps as tapping

LABELS_FILE = "imagenet_classes.txt"
ESPRESSO = 967
# The frozen export against the eager model, relative to the scores' scale.
MAX_ABS_DIFF = 1e-3
# The traced graph is checked at this batch size (it is traced at 1): a size baked in
# by the tracer shows up as an error or a difference here.
CHECK_BATCH = 3

# torchvision's ImageNet normalisation, in [0,1] units.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ExportError(Exception):
    """A refusal: one line saying what is wrong and what to do."""


def fail(message):
    raise ExportError(message)


def program_name():
    return Path(sys.argv[0]).name or "classviz-export"


def first_line(err):
    text = str(err).strip().splitlines()
    line = next((l.strip() for l in text if l.strip()), type(err).__name__)
    return f"{type(err).__name__}: {line}" if not line.startswith(type(err).__name__) else line


def home():
    """Where classviz looks for its default files after $CLASSVIZ_HOME: ~/.cache/classviz."""
    configured = os.environ.get("CLASSVIZ_HOME")
    return Path(configured) if configured else Path.home() / ".cache" / "classviz"


def imagenet_categories():
    """The 1000 ImageNet-1k class names bundled with torchvision."""
    from torchvision.models import ResNet50_Weights

    categories = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(categories) != 1000:
        fail(f"torchvision returned {len(categories)} ImageNet categories, expected 1000")
    return categories


def write_imagenet_labels(out_dir):
    """imagenet_classes.txt in `out_dir`; its name, for a sidecar."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sidecars.write_atomic(out_dir / LABELS_FILE, "\n".join(imagenet_categories()) + "\n")
    return LABELS_FILE


def center_crop_tensor(image, shape, mean, std):
    """Resize the shorter side to size·(256/224), centre-crop, normalise: [1, C, H, W]."""
    channels, height, width = shape
    image = Image.fromarray(image).convert("RGB" if channels == 3 else "L")
    short = round(min(height, width) * 256 / 224)
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - width) // 2, (h - height) // 2
    image = image.crop((left, top, left + width, top + height))
    array = np.asarray(image, dtype=np.float32) / 255.0
    x = torch.from_numpy(array.reshape(height, width, channels)).permute(2, 0, 1)
    x = (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    return x.unsqueeze(0)


def scores_of(output):
    """The class scores of a model's output: a tensor, a dict's (or a Hugging Face
    output's) "logits", or the first element of a tuple or list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) or hasattr(output, "keys"):
        for key in ("logits", "out", "scores"):
            if key in output:
                return output[key]
        fail(f"the model returns a dict with keys {sorted(output.keys())} and none is logits, out or scores; "
             "wrap it in a module whose forward returns the class scores")
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    fail(f"the model returns {type(output).__name__}, not a tensor of class scores")


class Scores(torch.nn.Module):
    """A model whose output is a dict, a tuple or a Hugging Face output, returning its scores."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return scores_of(self.model(x))


@dataclass
class Found:
    """What a source knows of its network, before the shared set-up (`complete`)
    applies the flags every source takes: --checkpoint, --input-shape, --mean, --std
    and --labels."""

    model: torch.nn.Module
    name: str
    # The source's own input shape, mean and std (None where the user must give them).
    shape: Optional[list]
    mean: Optional[list]
    std: Optional[list]
    # What it is ("torchvision resnet50"), and where its weights came from when neither
    # --checkpoint nor --random-init was given ("pretrained IMAGENET1K_V2").
    what: str
    weights: str
    # Class names (a list), or LABELS_FILE for ImageNet's 1000 when the head has 1000
    # outputs, or None.
    labels: object = None
    prefix_tokens: Optional[int] = None
    # Pretrained on ImageNet-1k: with its own weights, the export must see
    # scikit-image's coffee() photo as espresso.
    imagenet: bool = False
    channels_last: bool = False
    # A check of its own on the frozen export: check(frozen).
    check: Optional[Callable] = None
    # Other files the source writes beside an export without taps: also(out_dir).
    also: Optional[Callable] = None


@dataclass
class Source:
    """A network to export, whichever source made it."""

    model: torch.nn.Module
    name: str
    shape: list
    mean: list
    std: list
    description: str
    # Class names (a list), the name of a labels file written beside the model, or None.
    labels: object = None
    # Prefix tokens (class, distillation, registers) before a ViT's patch tokens, when known.
    prefix_tokens: Optional[int] = None
    # A check of the frozen export on a real photo (pretrained ImageNet weights).
    check: Optional[Callable] = None
    # The network lays its feature maps out channels last (Swin): settles a
    # [C, H, W] / [H, W, C] tie when a tap's shape fits both.
    channels_last: bool = False
    # Other files the source writes beside its export.
    also: Optional[Callable] = None


def complete(found, args):
    """`found` with the flags every source takes applied: its weights (--checkpoint),
    input shape, normalisation and labels."""
    if args.checkpoint:
        load_weights(found.model, args.checkpoint, found.name)
    shape = input_shape(args, found.shape)
    mean, std = channel_values(args, shape[0], found.mean, found.std)
    found.model.eval()
    classes = class_count(found.model, shape)
    labels = labels_from(args, classes)
    if labels is None and (found.labels != LABELS_FILE or classes == 1000):
        labels = found.labels
    own_weights = not (args.random_init or args.checkpoint)
    weights = ("random initialisation (untrained)" if args.random_init else
               f"weights from {args.checkpoint}" if args.checkpoint else found.weights)
    name = args.name or found.name
    checks = [found.check] if found.check else []
    if found.imagenet and own_weights and classes == 1000 and shape[0] == 3:
        checks.append(imagenet_check(name, shape, mean, std))
    check = (lambda frozen: [c(frozen) for c in checks]) if checks else None
    return Source(model=found.model, name=name, shape=shape, mean=mean, std=std, labels=labels,
                  description=f"{found.what}, {weights}, traced and frozen by classviz-export",
                  prefix_tokens=found.prefix_tokens, check=check, channels_last=found.channels_last,
                  also=found.also if own_weights else None)


@dataclass
class Exported:
    """What an export made: the eager network it traced (what --compile compiles), the
    files' stem and folder, the input shape and the taps; `rebuild()` makes a fresh copy
    of the user's network (which --randomise re-initialises block by block)."""

    network: torch.nn.Module
    stem: str
    out_dir: Path
    shape: list
    taps: list
    # The user's network as it was before any tap was hooked (for --randomise), and how
    # to wrap a copy of it as this export did.
    pristine: Optional[torch.nn.Module] = None
    wrap: Optional[Callable] = None

    @property
    def tap_names(self):
        return [t.name for t in self.taps]

    @property
    def pt_path(self):
        return self.out_dir / f"{self.stem}.pt"


def prepare(model):
    """Eval mode, frozen parameters, and the fused attention fast path off: in eval mode
    nn.MultiheadAttention takes a fast path whose op has no derivative, and classviz
    needs the input's gradient."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)
    return model


def scored(model, shape):
    """`model` if it returns its scores as a tensor, else wrapped to pick them out."""
    try:
        with torch.no_grad():
            output = model(torch.zeros(1, *shape))
    except ExportError:
        raise
    except Exception as err:
        fail(f"the model does not run on a [1, {', '.join(map(str, shape))}] input ({first_line(err)}); "
             "check --input-shape")
    scores = scores_of(output)
    if scores.dim() != 2 or scores.shape[0] != 1:
        fail(f"the model's scores have shape {list(scores.shape)}, expected [N, classes]: is it an image classifier?")
    return model if isinstance(output, torch.Tensor) else Scores(model).eval()


def network_of(source, requested_taps):
    """The network to trace: the user's model returning its scores, with its taps as grids."""
    model = prepare(source.model)
    network = scored(model, source.shape)
    if not requested_taps:
        return network, []
    if any(hint == "attention" for _, hint in requested_taps):
        exposed = attention.expose(model, source.shape)
        if not exposed:
            fail(f"{source.name}: no self-attention whose probabilities classviz can tap (it knows the ViTs of "
                 "torchvision, timm and Hugging Face)")
        requested_taps = [(name, hint) for tap, hint in requested_taps
                          for name in (exposed if tap == tapping.EVERY_ATTENTION else [tap])]
    taps = tapping.resolve(model, source.shape, requested_taps, source.prefix_tokens, fail, source.channels_last)
    for info in taps:
        if info.layout.kind == "attention":
            info.layout.readout = attention.readout(model, info.layout.prefix)
    torch.manual_seed(1)
    x = torch.randn(CHECK_BATCH, *source.shape)
    with torch.no_grad():
        before = network(x)
        tapped = tapping.Tapped(network, taps, hooked=model).eval()
        after = tapped(x)["logits"]
    if not torch.allclose(before, after, rtol=1e-5, atol=1e-5 * max(1.0, before.abs().max().item())):
        fail(f"{source.name}: laying the taps out as grids changed the scores (a bug in classviz-export; "
             "tap the modules with an explicit layout, NAME:nchw|nhwc|tokens)")
    return tapped, taps


def trace_frozen(network, shape, name, strict):
    """torch.jit.trace at batch 1, frozen; a failure is one line saying what to try."""
    torch.manual_seed(0)
    example = torch.randn(1, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(network, example, strict=strict, check_trace=False)
            return torch.jit.freeze(traced.eval())
        except ExportError:
            raise
        except Exception as err:
            fail(f"{name} cannot be traced to TorchScript ({first_line(err)}); classviz runs traced models: "
                 "export a module whose forward takes the image batch and returns the scores, "
                 "with no Python-side branching on tensor values")


def check_frozen(frozen, eager, shape, name):
    """The frozen export must give the eager scores at another batch size, on random
    images and their negatives (a branch on tensor values that the tracer baked in goes
    the other way on one of them), and a finite input gradient at the zero image or,
    failing that, near it: whether it is finite at zero."""
    torch.manual_seed(1)
    x = torch.randn(CHECK_BATCH, *shape)
    for sign in (1.0, -1.0):
        try:
            with torch.no_grad():
                expected, actual = scores_of(eager(sign * x)), scores_of(frozen(sign * x))
        except Exception as err:
            fail(f"{name}: the traced model fails at batch {CHECK_BATCH} ({first_line(err)}): the tracer baked in the "
                 "batch size of 1; make the forward use x.shape[0] rather than a constant")
        scale = max(1.0, expected.abs().max().item())
        diff = (actual - expected).abs().max().item()
        if not diff <= MAX_ABS_DIFF * scale:
            fail(f"{name}: the traced model differs from the eager one (max |diff| {diff:.3g}): its forward branches "
                 "on tensor values, which torch.jit.trace bakes in; remove the branch or export a module without it")
    if (expected.std(0) == 0).all():
        print(f"{program_name()}: note: {name}'s scores do not depend on its input (an untrained head initialised to "
              "zero?): its class images will stall; export trained weights (--checkpoint)", file=sys.stderr)
    if finite_gradient(frozen, torch.zeros(1, *shape), name):
        return True
    # A norm of the input, or a square root, at zero (MaxViT): the gradient is
    # not finite there, and is anywhere else. classviz starts such a model's
    # ascents off zero; a model whose gradient is nowhere finite is refused.
    torch.manual_seed(2)
    if not finite_gradient(frozen, torch.randn(1, *shape) * 0.01, name):
        fail(f"{name}: the frozen model gives no usable input gradient (not finite at the zero image nor near it)")
    print(f"{program_name()}: note: {name}'s input gradient is not finite at the zero image (a norm or a square root "
          "of the input there); classviz starts its ascents from a little noise instead", file=sys.stderr)
    return False


def finite_gradient(frozen, x, name):
    """Whether the frozen model's input gradient of its top score at `x` is finite."""
    x = x.clone().requires_grad_(True)
    try:
        scores_of(frozen(x))[0].max().backward()
    except Exception as err:
        fail(f"{name}: the traced model has no input gradient ({first_line(err)}); an op in it has no derivative")
    return x.grad is not None and bool(torch.isfinite(x.grad).all())


def export_source(source, out_dir, requested_taps=None, keep_pristine=False, keep=False):
    """Trace, freeze and check `source`'s network, write `<stem>.pt` and its sidecar.
    With `keep_pristine`, the export keeps a copy of the network made before its taps
    were hooked, for --randomise; with `keep`, an intact export already there (the
    file its sidecar records) is kept as it is."""
    requested_taps = requested_taps or []
    pristine = copy.deepcopy(prepare(source.model)) if keep_pristine else None
    network, taps = network_of(source, requested_taps)
    stem = f"{source.name}_taps" if taps else source.name
    wrap = lambda model: network_of(replace(source, model=model), requested_taps)[0]  # noqa: E731
    exported = Exported(network, stem, out_dir, list(source.shape), taps, pristine, wrap)
    if keep and sidecars.intact(exported.pt_path):
        print(f"{exported.pt_path}: kept (it matches its sidecar)")
        return exported
    frozen = trace_frozen(network, source.shape, source.name, strict=not taps)
    finite_at_zero = check_frozen(frozen, network, source.shape, source.name)
    if source.check:
        source.check(frozen)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = source.labels
    if labels == LABELS_FILE:
        write_imagenet_labels(out_dir)
    sidecar = sidecars.make(name=stem, source=source.description, input_shape=source.shape, mean=source.mean,
                            std=source.std, labels=labels, taps=[t.sidecar() for t in taps])
    if not finite_at_zero:
        sidecar["finite_gradient_at_zero"] = False
    sidecars.save(frozen, exported.pt_path, sidecar)
    if source.also and not taps:
        source.also(out_dir)
    print(f"{exported.pt_path}: {source.shape} input, frozen vs eager within {MAX_ABS_DIFF} at batch {CHECK_BATCH}")
    return exported


def imagenet_check(name, shape, mean, std):
    """A check of a pretrained ImageNet classifier's export: it must see scikit-image's
    coffee() photo as espresso."""

    def check(frozen):
        from skimage import data

        with torch.no_grad():
            top1 = int(scores_of(frozen(center_crop_tensor(data.coffee(), shape, mean, std))).argmax())
        if top1 != ESPRESSO:
            fail(f"{name}: coffee() photo classified as {top1}, expected {ESPRESSO} (espresso): the export is broken")

    return check


def parse_numbers(text, kind, flag):
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        fail(f"{flag} {text}: expected comma-separated numbers")


def channel_values(args, channels, default_mean, default_std):
    """--mean and --std, or the defaults; one value per channel each."""
    mean = parse_numbers(args.mean, float, "--mean") if args.mean else default_mean
    std = parse_numbers(args.std, float, "--std") if args.std else default_std
    if mean is None or std is None:
        fail("give --mean and --std (per channel, in [0,1] units)")
    if len(mean) == 1 and channels > 1:
        mean = mean * channels
    if len(std) == 1 and channels > 1:
        std = std * channels
    if len(mean) != channels or len(std) != channels:
        fail(f"--mean and --std need {channels} values each (one per input channel)")
    if any(s <= 0 for s in std):
        fail("--std values must be positive")
    return mean, std


def input_shape(args, default):
    if not args.input_shape:
        if default is None:
            fail("give --input-shape C,H,W")
        return list(default)
    shape = parse_numbers(args.input_shape, int, "--input-shape")
    if len(shape) != 3 or min(shape) < 1:
        fail("--input-shape must be C,H,W (positive)")
    return shape


def labels_from(args, classes):
    """--labels FILE as a list, or None; its length must match the outputs."""
    if not args.labels:
        return None
    path = Path(args.labels)
    if not path.is_file():
        fail(f"--labels {path}: no such file")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if classes is not None and len(names) != classes:
        fail(f"--labels {path} has {len(names)} names but the model has {classes} outputs")
    return names


def class_count(model, shape):
    with torch.no_grad():
        return int(scores_of(model(torch.zeros(1, *shape))).shape[1])


def load_state(path):
    """A state dict from a torch.save file (or a checkpoint holding one) or a .safetensors file."""
    path = Path(path)
    if not path.is_file():
        fail(f"--checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        fail(f"--checkpoint {path} cannot be read as a state dict ({first_line(err)})")
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        fail(f"--checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return state


def load_weights(model, path, name):
    state = load_state(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        fail(f"--checkpoint {path} does not fit {name} ({first_line(err)}); check the architecture and --kwargs")
    return model
