"""Taps: modules whose outputs a tapped export returns beside the scores, as an
image-shaped grid [N, C, H, W], whatever the module's own layout, or as attention
probabilities.

A module's output is read in one of four layouts:
  nchw       channels first [N, C, H, W] (convolutional networks);
  nhwc       channels last [N, H, W, C] (Swin's stages, ConvNeXt's block internals);
  tokens     [N, T, C]: P prefix tokens (a class token, a distillation token, registers,
             or none) before an h x w grid of patches, row-major;
  attention  [N, heads, T, T]: a self-attention's probabilities over tokens laid out as
             a token tap's (classviz.export.attention), returned as they are.

The export rewrites each tapped module's output as the grid and back (a permutation, or
the prefix tokens concatenated with the flattened grid), so the rest of the network
runs on exactly the same values while the grid is a tensor it depends on: the gradient
classviz takes at a tap (class activation maps) is the gradient at the grid itself.
"""

import math
from dataclasses import dataclass

import torch

LAYOUTS = ("nchw", "nhwc", "tokens", "attention")
# `--attention`'s request: every self-attention's probabilities.
EVERY_ATTENTION = "*"
# Prefix tokens tried, fewest first, when the model does not declare its count.
MAX_PREFIX_TOKENS = 16


@dataclass
class Layout:
    """How a module's output becomes a grid [N, C, H, W]."""

    kind: str
    prefix: int = 0
    grid: tuple = ()
    # attention: how the head reads the tokens ("token": the first; "mean": the patches').
    readout: str = "token"

    def to_grid(self, tensor):
        if self.kind in ("nchw", "attention"):
            return tensor
        if self.kind == "nhwc":
            return tensor.permute(0, 3, 1, 2)
        height, width = self.grid
        patches = tensor[:, self.prefix:]
        return patches.transpose(1, 2).reshape(tensor.shape[0], tensor.shape[2], height, width)

    def from_grid(self, grid, original):
        """The module's output rebuilt from `grid` (values unchanged)."""
        if self.kind in ("nchw", "attention"):
            return grid
        if self.kind == "nhwc":
            return grid.permute(0, 2, 3, 1)
        tokens = grid.flatten(2).transpose(1, 2)
        if self.prefix == 0:
            return tokens
        return torch.cat([original[:, : self.prefix], tokens], 1)

    def describe(self, source_shape):
        shown = "x".join(map(str, source_shape))
        if self.kind == "tokens":
            height, width = self.grid
            return f"{shown} tokens ({self.prefix} prefix, {height}x{width} grid)"
        if self.kind == "attention":
            height, width = self.grid
            return f"{shown} attention ({self.prefix} prefix, {height}x{width} grid)"
        return f"{shown} {self.kind}"

    def sidecar(self, name, source_shape, grid_shape):
        entry = {"name": name, "shape": list(grid_shape), "layout": self.kind, "source_shape": list(source_shape)}
        if self.kind in ("tokens", "attention"):
            entry["prefix_tokens"] = self.prefix
        if self.kind == "attention":
            entry["grid"] = list(self.grid)
            entry["readout"] = self.readout
        return entry


def first_tensor(output):
    """The tensor a module returns, or the first tensor of a tuple, list or dict it returns."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict):
        for value in output.values():
            if isinstance(value, torch.Tensor):
                return value
    return None


def replace_first(output, tensor):
    """`output` with its first tensor replaced (see `first_tensor`)."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple) and not hasattr(output, "keys"):
        return (tensor, *output[1:])
    if isinstance(output, list):
        return [tensor, *output[1:]]
    if isinstance(output, dict):
        key = next(k for k, v in output.items() if isinstance(v, torch.Tensor))
        output[key] = tensor
        return output
    return output


def spatial_fits(height, width, input_hw):
    """Whether an (height, width) grid is the input downsampled by one stride."""
    in_h, in_w = input_hw
    if height < 1 or width < 1 or height > in_h or width > in_w:
        return False
    for stride in range(1, max(in_h, in_w) + 1):
        for rounding in (math.floor, math.ceil):
            if rounding(in_h / stride) == height and rounding(in_w / stride) == width:
                return True
    return False


def token_grid(tokens, input_hw, prefix):
    """(h, w) of a patch grid of `tokens - prefix` patches with the input's aspect, or None."""
    patches = tokens - prefix
    if patches < 1:
        return None
    in_h, in_w = input_hw
    for height in range(1, patches + 1):
        if patches % height:
            continue
        width = patches // height
        if height * in_w == width * in_h and spatial_fits(height, width, input_hw):
            return height, width
    return None


def infer_layout(shape, input_hw, declared_prefix=None, hint=None, grids=(), channels_last=False):
    """The layout of an output of `shape` ([N, ...]) for an input of `input_hw`, or None
    if it is no image-shaped tensor. `hint` forces one of LAYOUTS; `declared_prefix` is
    the model's own count of prefix tokens; `grids` are the (h, w) of the model's
    channels-first outputs (a ViT's patch embedding), which a token grid should be one
    of; `channels_last` settles a [C, H, W] / [H, W, C] tie (timm's Swin)."""
    dims = list(shape[1:])
    if hint == "attention":
        return attention_layout(dims, input_hw, declared_prefix)
    if len(dims) == 3 and hint in (None, "nchw", "nhwc"):
        channels_first = spatial_fits(dims[1], dims[2], input_hw)
        last = spatial_fits(dims[0], dims[1], input_hw)
        if hint == "nhwc" or (hint is None and last and (channels_last or not channels_first)):
            return Layout("nhwc")
        if hint == "nchw" or channels_first:
            return Layout("nchw")
        return None
    if len(dims) == 2 and hint in (None, "tokens"):
        return token_layout(dims[0], input_hw, declared_prefix, grids)
    return None


def token_layout(tokens, input_hw, declared_prefix, grids):
    """Tokens as prefix tokens and a patch grid with the input's aspect. Plausible
    readings, best first: a grid the model also has as a channels-first map (its patch
    embedding), the model's own prefix count, no prefix, one class token. Any other
    count of prefix tokens needs the model's patch grid to confirm it."""
    readings = []
    for prefix in dict.fromkeys(p for p in [declared_prefix, *range(MAX_PREFIX_TOKENS + 1)] if p is not None):
        grid = token_grid(tokens, input_hw, prefix)
        if grid is None:
            continue
        rank = (0 if grid in grids else 1 if prefix == declared_prefix else 2 if prefix == 0 else 3 if prefix == 1
                else None)
        if rank is not None:
            readings.append((rank, prefix, grid))
    if not readings:
        return None
    _, prefix, grid = min(readings)
    return Layout("tokens", prefix, grid)


def attention_layout(dims, input_hw, declared_prefix):
    """[heads, T, T] probabilities over the tokens of a token tap, or None."""
    if len(dims) != 3 or dims[1] != dims[2]:
        return None
    tokens = token_layout(dims[1], input_hw, declared_prefix, ())
    return None if tokens is None else Layout("attention", tokens.prefix, tokens.grid)


@dataclass
class TapInfo:
    name: str
    source_shape: list
    layout: Layout

    @property
    def grid_shape(self):
        if self.layout.kind in ("nchw", "attention"):
            return list(self.source_shape)
        if self.layout.kind == "nhwc":
            height, width, channels = self.source_shape
            return [channels, height, width]
        return [self.source_shape[1], *self.layout.grid]

    def sidecar(self):
        return self.layout.sidecar(self.name, self.source_shape, self.grid_shape)


# Modules are probed with this many images: a module whose output has another leading
# dimension (windows of a Swin's attention) is not a per-image tensor.
PROBE_BATCH = 2
# Modules whose outputs are channels first whatever the network around them does.
CHANNELS_FIRST_MODULES = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d,
                          torch.nn.AdaptiveAvgPool2d)


def module_outputs(model, shape):
    """The first output shape ([N, ...]) of every named module that returns one tensor
    per image, for a batch of zero images."""
    shapes = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(module, inputs, output, name=name):
            tensor = first_tensor(output)
            if tensor is not None and tensor.dim() > 0 and tensor.shape[0] == PROBE_BATCH:
                shapes.setdefault(name, tuple(tensor.shape))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros(PROBE_BATCH, *shape))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


class Layouts:
    """Reads the layout of each module's output, with what the whole model says: the
    grids of its channels-first outputs, its prefix tokens, its preference for
    channels last."""

    def __init__(self, model, outputs, shape, declared_prefix=None, channels_last=False):
        modules = dict(model.named_modules())
        self.channels_first = {name for name in outputs if isinstance(modules.get(name), CHANNELS_FIRST_MODULES)}
        self.input_hw = tuple(shape[1:])
        self.declared_prefix = declared_prefix
        self.channels_last = channels_last
        self.grids = {tuple(full[2:]) for full in outputs.values()
                      if len(full) == 4 and spatial_fits(full[2], full[3], self.input_hw)}

    def of(self, name, full, hint=None):
        if hint is None and name in self.channels_first:
            hint = "nchw"
        return infer_layout(full, self.input_hw, self.declared_prefix, hint, self.grids, self.channels_last)


def candidates(model, shape, declared_prefix=None, channels_last=False):
    """Every module that can be tapped: {name: TapInfo}, in the model's order."""
    outputs = module_outputs(model, shape)
    layouts = Layouts(model, outputs, shape, declared_prefix, channels_last)
    found = {}
    for name, full in outputs.items():
        layout = layouts.of(name, full)
        if layout is not None:
            found[name] = TapInfo(name, list(full[1:]), layout)
    return found


def parse_taps(text):
    """`--taps NAME[:LAYOUT],...` as [(name, layout or None)]."""
    parsed = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, separator, layout = item.rpartition(":")
        parsed.append((name, layout) if separator and layout in LAYOUTS else (item, None))
    return parsed


def resolve(model, shape, requested, declared_prefix, fail, channels_last=False):
    """The TapInfo of each requested tap, or one line naming what is wrong."""
    modules = dict(model.named_modules())
    outputs = module_outputs(model, shape)
    layouts = Layouts(model, outputs, shape, declared_prefix, channels_last)
    resolved = []
    for name, hint in requested:
        if name not in modules:
            fail(f"unknown tap {name}: the model has no module of that name; --list-taps lists them")
        if name not in outputs:
            fail(f"tap {name}: the module returns no tensor per image (or is never called); --list-taps lists the "
                 "ones that can be tapped")
        full = outputs[name]
        layout = layouts.of(name, full, hint)
        if layout is None:
            what = "x".join(map(str, full[1:]))
            if hint == "attention":
                fail(f"tap {name} returns {what}, not attention probabilities [heads, T, T] over prefix tokens and "
                     f"a patch grid with the input's aspect ({shape[1]}x{shape[2]})")
            if len(full) == 3:
                fail(f"tap {name} returns {what} tokens, which are not prefix tokens before a patch grid with the input's "
                     f"aspect ({shape[1]}x{shape[2]}); pass --prefix-tokens N if the model has N tokens before its patches")
            fail(f"tap {name} returns {what}, not an image-shaped [C, H, W], [H, W, C] or tokens [T, C]")
        resolved.append(TapInfo(name, list(full[1:]), layout))
    return resolved


def listing(model, shape, declared_prefix=None, channels_last=False, attention=()):
    """The lines of --list-taps: each module, its output, the grid classviz sees, and
    what it suits: units (channels and neurons) at any grid, class activation maps
    where the grid has more than one position and the class score's gradient there is
    not zero (a ViT's last block is not: its patch tokens never reach the class token)."""
    found = candidates(model, shape, declared_prefix, channels_last)
    outputs = module_outputs(model, shape) if attention else {}
    for name in attention:
        layout = attention_layout(list(outputs.get(name, ())[1:]), tuple(shape[1:]), declared_prefix)
        if layout is not None:
            found[name] = TapInfo(name, list(outputs[name][1:]), layout)
    reach = score_reaches(model, shape, found)
    lines = []
    for info in found.values():
        if info.layout.kind == "attention":
            lines.append(f"{info.name:48s} {info.layout.describe(info.source_shape):36s} -> rollout (--attention)")
            continue
        grid = "x".join(map(str, info.grid_shape))
        spatial = info.grid_shape[1] * info.grid_shape[2] > 1
        suits = "units, CAMs" if spatial and reach.get(info.name) else "units"
        if spatial and not reach.get(info.name):
            suits += " (no CAMs: the class score's gradient is zero there)"
        lines.append(f"{info.name:48s} {info.layout.describe(info.source_shape):36s} -> {grid:14s} {suits}")
    return lines


def score_reaches(model, shape, found):
    """{name: whether the top class score's gradient at the module's grid is not zero},
    from one forward and backward pass on a random image."""
    kept = {}
    modules = dict(model.named_modules())
    handles = []
    for info in found.values():
        def hook(module, inputs, output, info=info):
            tensor = first_tensor(output)
            if tensor is not None and tensor.requires_grad:
                tensor.retain_grad()
                kept[info.name] = tensor
        handles.append(modules[info.name].register_forward_hook(hook))
    try:
        torch.manual_seed(3)
        x = (torch.randn(PROBE_BATCH, *shape) * 0.5).requires_grad_(True)
        from classviz.export.common import scores_of

        scores = scores_of(model(x))
        scores[0, int(scores[0].argmax())].backward()
    finally:
        for handle in handles:
            handle.remove()
    return {name: tensor.grad is not None and bool(found[name].layout.to_grid(tensor.grad).abs().sum() > 0)
            for name, tensor in kept.items()}


class Tapped(torch.nn.Module):
    """A classifier that also returns chosen modules' outputs as grids, in a dict
    {"logits": scores, NAME: [N, C, H, W], ...}."""

    def __init__(self, model, taps, hooked=None):
        """`model` gives the scores; the taps are modules of `hooked` (default: `model`),
        the user's network inside a wrapper that picks the scores from its output."""
        super().__init__()
        self.model = model
        self.taps = list(taps)
        self._seen = {}
        modules = dict((hooked or model).named_modules())
        for info in self.taps:
            modules[info.name].register_forward_hook(self._keep(info))

    def _keep(self, info):
        def hook(module, inputs, output):
            tensor = first_tensor(output)
            grid = info.layout.to_grid(tensor)
            self._seen[info.name] = grid
            if info.layout.kind in ("nchw", "attention"):
                return None
            return replace_first(output, info.layout.from_grid(grid, tensor))

        return hook

    def forward(self, x):
        out = {"logits": self.model(x)}
        for info in self.taps:
            out[info.name] = self._seen[info.name]
        return out
