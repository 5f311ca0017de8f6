#!/usr/bin/env python3
"""The Python/PyTorch reference for bench/gpu.sh: the same exported model, the
same classes, steps and batch as classviz, on any device, timed end to end
(process start to last score, model load included).

  --preset simonyan   the paper: zero start, x <- x + lr * (grad S_c - 2 l2 x),
                      parameters frozen, torch.autograd.grad on the input only;
  --preset natural    the Lucid recipe of bench/lucid.py (Fourier, decorrelated
                      colour, pad/jitter/scale/rotate, Adam), batched.

--bf16 runs the forward pass under torch.autocast(bfloat16); --channels-last
feeds NHWC input. Every image is scored in fp32 after the last batch (the
faster of the two orders the GPU issue measured). Prints one JSON line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

started = time.perf_counter()

import torch  # noqa: E402  (the import is part of the timed start-up)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lucid  # noqa: E402
from common import LITE0, parse_classes  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def simonyan(model, chunk, args, device):
    x = torch.zeros(len(chunk), 3, args.size, args.size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(args.iters):
        xi = x.detach().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            scores = model(xi).float().gather(1, chunk.view(-1, 1))
        (grad,) = torch.autograd.grad(scores.sum(), xi)
        x = x + args.lr * (grad - 2 * args.l2 * x)
    return x.detach()


def natural(model, chunk, args, device, mean, std, scale):
    h = w = args.size
    spectrum = (torch.randn(len(chunk), 3, h, w // 2 + 1, 2, device=device) * 0.01).requires_grad_(True)
    optimiser = torch.optim.Adam([spectrum], lr=0.05)
    scales = [1 + (i - 5) / 50 for i in range(11)]
    for _ in range(args.iters):
        x = lucid.image01(spectrum, scale, h, w, mean)
        x = lucid.random_transform(x, pad=16, jitter=8, scales=scales, degrees=10)
        x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x).float()
        loss = -logits.gather(1, chunk.view(-1, 1)).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return (lucid.image01(spectrum, scale, h, w, mean) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["simonyan", "natural"], default="simonyan")
    parser.add_argument("--model", default=str(LITE0))
    parser.add_argument("--classes", type=parse_classes, default="all")
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    if isinstance(args.classes, str):
        args.classes = parse_classes(args.classes)

    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    model = torch.jit.load(args.model, map_location=device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    mean = torch.full((3,), 127 / 255, device=device)
    std = torch.full((3,), 128 / 255, device=device)
    scale = lucid.spectrum_scale(args.size, args.size).to(device)
    lucid.COLOUR_SQRT = lucid.COLOUR_SQRT.to(device)
    images = []
    for start in range(0, len(args.classes), args.batch):
        chunk = torch.tensor(args.classes[start : start + args.batch], device=device)
        if args.preset == "simonyan":
            images.append(simonyan(model, chunk, args, device))
        else:
            images.append(natural(model, chunk, args, device, mean, std, scale))
    sync(device)
    optimised = time.perf_counter() - started

    # Score every image as a PNG reader would get it: [0,1]-clamped, 8-bit, fp32.
    scorer = torch.jit.load(args.model, map_location=device).eval()
    top1 = 0
    logits_all = []
    with torch.no_grad():
        for x, start in zip(images, range(0, len(args.classes), args.batch)):
            x01 = (x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)).clamp(0, 1)
            x01 = (x01 * 255).round() / 255
            logits = scorer((x01 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).float()
            chunk = torch.tensor(args.classes[start : start + args.batch], device=device)
            top1 += int((logits.argmax(1) == chunk).sum())
            logits_all.extend(logits.gather(1, chunk.view(-1, 1)).view(-1).tolist())
    sync(device)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "preset": args.preset, "device": args.device, "bf16": args.bf16, "channels_last": args.channels_last,
        "batch": args.batch, "classes": len(args.classes), "iters": args.iters,
        "seconds": seconds, "optimising_seconds": optimised, "top1": top1,
        "median_logit": sorted(logits_all)[len(logits_all) // 2],
    }))


if __name__ == "__main__":
    main()
