#!/usr/bin/env python3
"""Unit checks of the exporter's tap layouts (python/classviz/export/taps.py), run by
tests/families.rs: each layout's grid and back is the identity, the gradient at the
grid is the gradient at the module's output, and layouts are read as documented."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from classviz.export import taps  # noqa: E402


def round_trips():
    torch.manual_seed(0)
    cases = [
        (taps.Layout("nchw"), torch.randn(2, 5, 3, 4)),
        (taps.Layout("nhwc"), torch.randn(2, 3, 4, 5)),
        (taps.Layout("tokens", 2, (3, 4)), torch.randn(2, 14, 5)),
        (taps.Layout("tokens", 0, (3, 4)), torch.randn(2, 12, 5)),
    ]
    for layout, tensor in cases:
        grid = layout.to_grid(tensor)
        assert list(grid.shape) == [2, 5, 3, 4], (layout, grid.shape)
        assert torch.equal(layout.from_grid(grid, tensor), tensor), layout
    # Token p of the patches is row p // width, column p % width of the grid.
    layout, tensor = cases[2]
    assert torch.equal(layout.to_grid(tensor)[:, :, 1, 2], tensor[:, 2 + 1 * 4 + 2]), "row-major patches"


def gradients_reach_the_grid():
    """f(from_grid(g)) has the gradient of f at the tokens, laid out as the grid."""
    layout = taps.Layout("tokens", 1, (2, 2))
    tokens = torch.randn(1, 5, 3, requires_grad=True)
    weights = torch.randn(1, 5, 3)
    grid = layout.to_grid(tokens)
    rebuilt = layout.from_grid(grid, tokens)
    (expected,) = torch.autograd.grad((tokens * weights).sum(), tokens)
    (at_grid,) = torch.autograd.grad((rebuilt * weights).sum(), grid)
    assert torch.allclose(at_grid, layout.to_grid(expected)), "the gradient at the grid"


def layouts_are_read_as_documented():
    read = taps.infer_layout
    assert read((1, 96, 56, 56), (224, 224)).kind == "nchw"
    assert read((1, 56, 56, 96), (224, 224)).kind == "nhwc"
    assert read((1, 16, 16, 16), (64, 64)).kind == "nchw", "a tie is channels first"
    assert read((1, 16, 16, 16), (64, 64), channels_last=True).kind == "nhwc", "unless the model says"
    assert read((1, 197, 768), (224, 224)) == taps.Layout("tokens", 1, (14, 14))
    assert read((1, 198, 768), (224, 224), declared_prefix=2) == taps.Layout("tokens", 2, (14, 14))
    registers = read((1, 261, 384), (224, 224), grids={(16, 16)})
    assert registers == taps.Layout("tokens", 5, (16, 16)), registers
    assert read((1, 196, 768), (224, 224)) == taps.Layout("tokens", 0, (14, 14)), "pooled, no class token"
    assert read((1, 281, 64), (224, 320)) == taps.Layout("tokens", 1, (14, 20)), "a non-square grid"
    assert read((1, 7, 8), (16, 16)) is None, "no grid"
    assert read((1, 7, 8), (16, 16), declared_prefix=3) == taps.Layout("tokens", 3, (2, 2))
    assert read((1, 10), (16, 16)) is None
    assert taps.parse_taps("a.b, c:nhwc,d:tokens,e:x") == [("a.b", None), ("c", "nhwc"), ("d", "tokens"), ("e:x", None)]


if __name__ == "__main__":
    round_trips()
    gradients_reach_the_grid()
    layouts_are_read_as_documented()
    print("export_taps.py: tap layouts ok")
