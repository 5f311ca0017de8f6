#!/usr/bin/env python3
"""An independent reference for classviz's attention methods: attention rollout
(Abnar & Zuidema 2020) and gradient-weighted rollout (Chefer, Gur & Wolf 2021)
on the digits ViT that tests/make_models.py trained, computed on the eager
torchvision model, its attention probabilities caught in each block's
nn.MultiheadAttention (recomputed from the module's projections so that they
carry a gradient, and checked against the module's own weights and output).
Nothing of classviz's export (its explicit attention, its taps) is used.

Writes tests/models/attention_reference.json: per held-out digit (the first
DIGITS of tests/models/digits_test/), the class (the ViT's top-1) and both maps,
[32, 32] in [0, 1] (upsampled bilinearly from the patch grid, scaled by the
maximum), row by row.

tests/families.rs compares classviz's maps on the export made with --attention.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "models"
DIGITS = 6


class Weights:
    """Each block's attention probabilities [heads, T, T], kept with their gradient.

    nn.MultiheadAttention returns its weights as a view made after they were
    used, so no gradient reaches it: each block's attention is recomputed here
    from the module's own projections (softmax(QK^T/sqrt(d)) V, then out_proj),
    checked against the module's output, and its probabilities are the tensor
    the rest of the network uses.
    """

    def __init__(self, model):
        self.blocks = []
        for layer in model.encoder.layers:
            attention = layer.self_attention
            attention.forward = self.wrapped(attention, attention.forward)

    def wrapped(self, module, forward):
        def call(query, key, value, **kwargs):
            batch, tokens, dim = query.shape
            heads = module.num_heads
            q, k, v = F.linear(query, module.in_proj_weight, module.in_proj_bias).chunk(3, dim=-1)
            q, k, v = (t.reshape(batch, tokens, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
            probs = (q @ k.transpose(-2, -1) / (dim // heads) ** 0.5).softmax(-1)
            if probs.requires_grad:
                probs.retain_grad()
            mixed = (probs @ v).transpose(1, 2).reshape(batch, tokens, dim)
            output = module.out_proj(mixed)
            with torch.no_grad():
                theirs, weights = forward(query, key, value, need_weights=True, average_attn_weights=False)
            assert torch.allclose(output, theirs, atol=1e-5), "the recomputed attention differs from the module's"
            assert torch.allclose(probs, weights, atol=1e-6), "the recomputed probabilities differ from the module's"
            self.blocks.append(probs)
            return output, None

        return call


def rollout(blocks):
    tokens = blocks[0].shape[-1]
    relevance = torch.eye(tokens)
    for a in blocks:
        relevance = 0.5 * (a.mean(0) + torch.eye(tokens)) @ relevance
    return relevance


def gradient_rollout(blocks, gradients):
    tokens = blocks[0].shape[-1]
    relevance = torch.eye(tokens)
    for a, g in zip(blocks, gradients):
        relevance = relevance + (g * a).clamp_min(0).mean(0) @ relevance
    return relevance


def finish(relevance, grid, size):
    """The class token's row over the patches, upsampled and scaled to [0, 1]."""
    coarse = relevance[0, 1:].reshape(grid, grid)
    up = F.interpolate(coarse[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    up = up.clamp_min(0)
    return (up / up.max().clamp_min(1e-12)).numpy().astype(np.float32)


def main():
    torch.set_num_threads(1)
    pair = json.loads((MODELS / "digits_pair.json").read_text())
    model = torchvision.models.VisionTransformer(**pair["vit"])
    model.load_state_dict(torch.load(MODELS / "digits_vit_state.pt", weights_only=True))
    model.eval()
    hooked = Weights(model)
    size, grid = pair["vit"]["image_size"], pair["vit"]["image_size"] // pair["vit"]["patch_size"]
    reference = {}
    for path in sorted((MODELS / "digits_test").glob("*.png"))[:DIGITS]:
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        x = (torch.from_numpy(pixels).permute(2, 0, 1)[None] - pair["mean"]) / pair["std"]
        hooked.blocks.clear()
        scores = model(x)
        cls = int(scores.argmax())
        scores[0, cls].backward()
        blocks = [a.detach()[0] for a in hooked.blocks]
        gradients = [a.grad[0] for a in hooked.blocks]
        maps = {
            "rollout": finish(rollout(blocks), grid, size),
            "gradient-rollout": finish(gradient_rollout(blocks, gradients), grid, size),
        }
        reference[path.name] = {"class": cls, **{m: v.reshape(-1).tolist() for m, v in maps.items()}}
    (MODELS / "attention_reference.json").write_text(json.dumps(reference) + "\n")
    print(f"attention rollout references for {len(reference)} digits written to {MODELS}", file=sys.stderr)


if __name__ == "__main__":
    main()
