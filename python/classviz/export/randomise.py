"""Cascading randomisation (Adebayo et al. 2018), for `classviz saliency --sanity`: the
exported network with its top k blocks re-initialised, k = 1, 3, 4, 8 and all, each
written as `<stem>_random<k>.pt` with its sidecar and listed in the model's sidecar."""

import copy

import torch

from classviz import sidecar as sidecars
from classviz.export.common import fail

# The number of blocks re-initialised from the top at each depth; None is every block.
DEPTHS = (1, 3, 4, 8, None)


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


def variant(exported, depth):
    """The network with its top `depth` blocks (None: all) re-initialised, frozen; the
    blocks' names."""
    model = copy.deepcopy(exported.pristine)
    blocks = blocks_top_down(model)
    chosen = blocks[: depth or len(blocks)]
    torch.manual_seed(len(chosen))
    for _, block in chosen:
        for module in block.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    for p in model.parameters():
        p.requires_grad_(False)
    network = exported.wrap(model).eval()
    with torch.no_grad():
        traced = torch.jit.trace(network, torch.zeros(1, *exported.shape), strict=not exported.taps)
    return torch.jit.freeze(traced.eval()), [n for n, _ in chosen], len(blocks)


def randomise(exported):
    """Write the cascading variants and list them in the model's sidecar."""
    if exported.pristine is None:
        fail("--randomise needs the network before its taps were hooked (an internal error)")
    sidecar = sidecars.read(exported.pt_path)
    variants = []
    for depth in DEPTHS:
        frozen, blocks, total = variant(exported, depth)
        name = f"{exported.stem}_random{len(blocks)}"
        entry = {k: v for k, v in sidecar.items() if k not in ("compiled", "randomised", "sha256")}
        entry["name"] = name
        entry["source"] = f"{sidecar.get('source', exported.stem)}; top {len(blocks)} block(s) re-initialised"
        path = exported.out_dir / f"{name}.pt"
        sidecars.save(frozen, path, entry)
        variants.append({"depth": len(blocks), "blocks": blocks, "file": f"{name}.pt"})
        if depth is None or depth >= total:
            break
    sidecars.update(exported.pt_path, randomised=variants)
    print(f"{sidecars.path_of(exported.pt_path)}: {len(variants)} randomised variants, up to {variants[-1]['depth']} blocks")
