#!/usr/bin/env python3
"""Two design questions of the compiled engine (issue 21), measured on the CPU:

  dynamic vs fixed   one package with a dynamic batch dimension (what classviz ships)
                     against one compiled for batch 4 only;
  update inside      the paper's update x <- x + lr * (grad - 2 * l2 * x) done in the
                     package (the step returns the next image) against done outside it,
                     as classviz does (the package returns the gradient, tch updates).

Each variant is compiled from Lite0's padding-folded network (as weights/export.py
--compile does), then run for --steps steps at batch 4 from the zero image, in
--rounds interleaved rounds; prints the median milliseconds per step of each and the
compile times. It sets glibc's malloc to keep freed memory, as classviz does for itself
(crates/classviz-engine/src/allocator.rs), before torch loads. `make bench-engine` runs it; a quiet machine:

    .venv/bin/python3 bench/step_variants.py [--threads 2] [--steps 30] [--rounds 3]
"""

import os

os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "1073741824")
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", "2147483647")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

import torch  # noqa: E402
from torch.fx.experimental.proxy_tensor import make_fx  # noqa: E402

from classviz.compile_step import MAX_ROWS, step_function  # noqa: E402
from classviz.export import lite  # noqa: E402

BATCH = 4
LR, L2 = 1.0, 1e-4


def updating(step):
    """The step that also applies the paper's update: returns (scores, next x)."""

    def step_and_update(x, w, lr, l2):
        scores, gradient = step(x, w)
        return scores, x + lr * (gradient - 2.0 * l2 * x)

    return step_and_update


def compile_variant(function, example, dynamic_rows, folder, name):
    """make_fx -> torch.export -> AOTInductor package; returns (runner, seconds)."""
    started = time.time()
    if dynamic_rows:
        traced = make_fx(function, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
        rows = torch.export.Dim("rows", min=1, max=MAX_ROWS)
        dynamic = tuple({0: rows} if t.dim() > 0 else {} for t in example)
    else:
        traced, dynamic = make_fx(function)(*example), None
    program = torch.export.export(traced, tuple(example), dynamic_shapes=dynamic)
    path = str(Path(folder) / f"{name}.pt2")
    torch._inductor.aoti_compile_and_package(program, package_path=path)
    return torch._inductor.aoti_load_package(path), time.time() - started


def time_steps(run, steps):
    """Milliseconds per step over `steps` steps from the zero image (3 warm-up steps)."""
    for _ in range(3):
        run(torch.zeros(BATCH, 3, 224, 224))
    started = time.perf_counter()
    x = torch.zeros(BATCH, 3, 224, 224)
    for _ in range(steps):
        x = run(x)
    return (time.perf_counter() - started) / steps * 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    network, _ = lite.folded("efficientnet_lite0")
    step = step_function(network, [])
    torch.manual_seed(0)
    x0 = torch.randn(2, 3, 224, 224)
    w = torch.zeros(BATCH, 1000)
    w[torch.arange(BATCH), torch.tensor([1, 9, 100, 130])] = 1.0
    lr, l2 = torch.tensor(LR), torch.tensor(L2)

    with tempfile.TemporaryDirectory() as folder:
        dynamic, t_dynamic = compile_variant(step, [x0, torch.randn(2, 1000)], True, folder, "dynamic")
        fixed, t_fixed = compile_variant(step, [x0.repeat(2, 1, 1, 1), w], False, folder, "fixed")
        inside, t_inside = compile_variant(
            updating(step), [x0, torch.randn(2, 1000), lr, l2], True, folder, "inside"
        )

        def outside(package):
            def run(x):
                _, gradient = package(x, w)
                return x + LR * (gradient - 2.0 * L2 * x)

            return run

        def in_package(x):
            return inside(x, w, lr, l2)[1]

        # The same end point: the update inside the package gives the same image.
        a, b = outside(dynamic), in_package
        xa = xb = torch.zeros(BATCH, 3, 224, 224)
        for _ in range(3):
            xa, xb = a(xa), b(xb)
        agreement = ((xa - xb).norm() / xa.norm()).item()

        runs = {"dynamic batch, update outside (shipped)": outside(dynamic),
                "batch 4 only, update outside": outside(fixed),
                "dynamic batch, update inside": in_package}
        times = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                times[name].append(time_steps(run, args.steps))

    compiled = {"dynamic batch, update outside (shipped)": t_dynamic,
                "batch 4 only, update outside": t_fixed, "dynamic batch, update inside": t_inside}
    base = statistics.median(times["dynamic batch, update outside (shipped)"])
    print(f"EfficientNet-Lite0, batch {BATCH}, {args.steps} steps x {args.rounds} rounds, "
          f"{args.threads} threads, malloc keeping freed memory; torch {torch.__version__}")
    print()
    print("| package | ms/step (median) | rounds | vs shipped | compile s |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name, values in times.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {median:.1f} | {rounds} | {base / median:.2f}x | {compiled[name]:.0f} |")
    print()
    print(f"images after 3 steps, update inside vs outside: relative difference {agreement:.1e}")


if __name__ == "__main__":
    main()
