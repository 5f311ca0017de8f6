#!/usr/bin/env python3
"""Python/PyTorch reference of classviz's procedure, for benchmarks.

Simonyan et al.'s class model visualisation: from the zero image in the model's
zero-centred space, x <- x + lr * grad_x(S_c(x) - l2 * ||x||^2), on the same
exported TorchScript model classviz uses.

  --mode naive   one class at a time, as a typical reproduction script does:
                 parameters left requiring grad, loss.backward(), then x.grad.
                 A frozen export has no parameters (they are folded into
                 constants), so naive runs the same network as traced but not
                 frozen: <model>_unfrozen.pt, written by weights/export.py.
  --mode tuned   parameters frozen, --batch classes per forward/backward,
                 torch.autograd.grad on the input only, the L2 gradient in closed form.
                 --channels-last and --bf16 (CPU autocast) are optional levers.
  --mode package the tuned loop, each step one call of the AOTInductor package that
                 classviz's compiled engine runs (<model>.cpu.pt2, weights/export.py --compile).
  --mode compile the tuned loop on the eager network (padding folded, as exported),
                 its step compiled by torch.compile (the first, compiling step included).

Prints one JSON line: seconds (wall, model load included), seconds per class,
and per class the final logit and whether it is top-1 (re-scored in fp32).
"""

import argparse
import json
import time
from pathlib import Path

import torch

from common import LITE0, parse_classes


def naive(model, classes, args):
    results = []
    for c in classes:
        for p in model.parameters():
            p.requires_grad_(True)
        x = torch.zeros(1, 3, args.size, args.size, requires_grad=True)
        for _ in range(args.iters):
            score = model(x)[0, c]
            loss = -(score - args.l2 * (x * x).sum())
            loss.backward()
            with torch.no_grad():
                x -= args.lr * x.grad
            x.grad.zero_()
        results.append(x.detach())
    return torch.cat(results)


def tuned(model, classes, args):
    for p in model.parameters():
        p.requires_grad_(False)
    out = []
    for start in range(0, len(classes), args.batch):
        chunk = torch.tensor(classes[start : start + args.batch])
        x = torch.zeros(len(chunk), 3, args.size, args.size)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for _ in range(args.iters):
            xi = x.detach().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                scores = model(xi).float().gather(1, chunk.view(-1, 1))
            (grad,) = torch.autograd.grad(scores.sum(), xi)
            x = x + args.lr * (grad - 2 * args.l2 * x)
        out.append(x)
    return torch.cat(out)


def onehot(chunk, classes=1000):
    weights = torch.zeros(len(chunk), classes)
    weights[torch.arange(len(chunk)), chunk] = 1.0
    return weights


def stepped(step, classes, args):
    """The tuned loop with `step(x, weights) -> (scores, gradient)` as its one call."""
    out = []
    for start in range(0, len(classes), args.batch):
        chunk = torch.tensor(classes[start : start + args.batch])
        weights = onehot(chunk)
        x = torch.zeros(len(chunk), 3, args.size, args.size)
        for _ in range(args.iters):
            _, grad = step(x, weights)
            x = x + args.lr * (grad - 2 * args.l2 * x)
        out.append(x)
    return torch.cat(out)


def package(model_path, classes, args):
    path = model_path.removesuffix(".pt") + ".cpu.pt2"
    loaded = torch._inductor.aoti_load_package(path)
    return stepped(lambda x, w: loaded(x, w), classes, args)


def compiled(classes, args):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from classviz.compile_step import step_function
    from classviz.export import lite

    name = Path(args.model).stem
    network, _ = lite.folded(name)
    step = torch.compile(step_function(network, []))
    return stepped(step, classes, args)


def save(images, classes, out):
    """The images (Lite's normalisation undone) as <out>/<class>_reference.png."""
    import numpy as np
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    x01 = (images.detach().float() * (128 / 255) + 127 / 255).clamp(0, 1)
    for image, c in zip(x01, classes):
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(out / f"{c}_reference.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["naive", "tuned", "package", "compile"], required=True)
    parser.add_argument("--model", default=str(LITE0))
    parser.add_argument("--classes", type=parse_classes, required=True)
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--out", type=Path, help="also write <out>/<class>_reference.png")
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    path = args.model
    if args.mode == "naive":
        path = args.model.removesuffix(".pt") + "_unfrozen.pt"
    if args.mode == "package":
        images = package(args.model, args.classes, args)
    elif args.mode == "compile":
        images = compiled(args.classes, args)
    else:
        model = torch.jit.load(path).eval()
        images = (naive if args.mode == "naive" else tuned)(model, args.classes, args)
    seconds = time.perf_counter() - started

    with torch.no_grad():
        logits = torch.jit.load(args.model)(images.contiguous().float())
    if args.out:
        save(images, args.classes, args.out)
    rows = [
        {"class": c, "logit": float(logits[i, c]), "top1": int(logits[i].argmax()) == c}
        for i, c in enumerate(args.classes)
    ]
    print(json.dumps({"mode": args.mode, "seconds": seconds, "per_class": seconds / len(args.classes), "classes": rows}))


if __name__ == "__main__":
    main()
