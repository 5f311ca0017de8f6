#!/usr/bin/env python3
"""Compile one ascent step of a classviz model with AOTInductor, for classviz's compiled
engine (--engine). Needs only torch: the step is traced once (by weights/export.py
--compile) into a torch.export program, <stem>.step.pt2, from which a package is
compiled for any device, on a machine that has the device:

    python weights/compile_step.py weights/efficientnet_lite0.step.pt2 --device cuda

The step takes the image batch and weights on the model's outputs and returns the
scores, the taps and the input's gradient of the weighted outputs:

    step(x, w_scores, *w_taps) = (scores, *taps, d<w, outputs>/dx)

It is traced with make_fx (through autograd) and exported with a dynamic batch
dimension. The package's scores, and its gradient at the zero image, are checked
against the TorchScript model (<stem>.pt), and the sidecar records the package under
"compiled" with its own SHA-256, the model file's, the device and the torch version.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

from classviz import sidecar as sidecars

# The compiled step's scores, and its gradient, against the TorchScript file's, as
# ||difference|| / ||TorchScript's|| (measured about 1e-6 on Lite0; docs/benchmarks.md).
# The gradient must agree at the zero image or near it, whichever is better behaved:
# away from zero a few of Lite0's ReLU6 units sit on a boundary and flip with the order
# of a sum (eager PyTorch and TorchScript differ by up to 6e-3 there), while at zero a
# LayerNorm of a constant map (ConvNeXt, Swin) divides by its epsilon, and a gradient
# of 1e14 differs in its last places between any two implementations.
PACKAGE_TOLERANCE = 1e-4
# The scores are also compared on Gaussian noise of this sigma around the mean image.
CHECK_INPUT_SCALE = 0.1
# The largest batch the dynamic dimension admits.
MAX_ROWS = 4096


def fail(message):
    print(f"compile_step.py: {message}", file=sys.stderr)
    sys.exit(1)


def scores_of(output):
    """The class scores of a model's output (a tapped model's is a dict)."""
    return output["logits"] if isinstance(output, dict) else output


def step_function(network, taps):
    """One ascent step of `network` as a function of the image batch and the weights on
    its outputs: (scores, *taps, d<w, outputs>/dx)."""

    def step(x, w, *tap_weights):
        # Channels-last: the CPU's convolutions run markedly faster on it.
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        with torch.enable_grad():
            out = network(x)
            scores = scores_of(out)
            total = (scores * w).sum()
            activations = [out[name] for name in taps]
            for activation, weight in zip(activations, tap_weights):
                total = total + (activation * weight).sum()
            (gradient,) = torch.autograd.grad(total, x)
        return (scores.detach(), *[a.detach() for a in activations], gradient)

    return step


def read_sidecar(pt_path):
    return sidecars.read(pt_path)


def layout(sidecar):
    """The input shape, the class count, the taps and their shapes, from the sidecar."""
    labels = sidecar.get("labels")
    classes = len(labels) if isinstance(labels, list) else None
    if classes is None:
        names = (Path(sidecar["_dir"]) / labels).read_text().split("\n") if labels else []
        classes = len([n for n in names if n.strip()]) or None
    taps = [t["name"] for t in sidecar.get("taps", [])]
    shapes = {t["name"]: t["shape"] for t in sidecar.get("taps", [])}
    return sidecar["input_shape"], classes, taps, shapes


def example_inputs(rows, shape, classes, taps, tap_shapes, device):
    """A batch of random images and random weights on every output."""
    torch.manual_seed(0)
    inputs = [torch.randn(rows, *shape, device=device), torch.randn(rows, classes, device=device)]
    for name in taps:
        inputs.append(torch.randn(rows, *tap_shapes[name], device=device))
    return inputs


def classes_of(network, sidecar, shape):
    _, classes, _, _ = layout(sidecar)
    if classes:
        return classes
    with torch.no_grad():
        return scores_of(network(torch.zeros(1, *shape))).shape[1]


def trace(network, pt_path, shape, taps, batch=None):
    """Trace `network`'s step with make_fx and export it (a dynamic batch unless `batch`);
    save the program as <stem>.step.pt2 and return its path."""
    from torch.fx.experimental.proxy_tensor import make_fx

    sidecar = read_sidecar(pt_path)
    sidecar["_dir"] = str(pt_path.parent)
    classes = classes_of(network, sidecar, shape)
    _, _, _, tap_shapes = layout(sidecar)
    example = example_inputs(batch or 2, shape, classes, taps, tap_shapes, "cpu")
    step = step_function(network, taps)
    if batch is None:
        traced = make_fx(step, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
        rows = torch.export.Dim("rows", min=1, max=MAX_ROWS)
        dynamic = tuple({0: rows} for _ in example)
    else:
        traced, dynamic = make_fx(step)(*example), None
    program = torch.export.export(traced, tuple(example), dynamic_shapes=dynamic)
    path = pt_path.with_name(f"{pt_path.stem}.step.pt2")
    torch.export.save(program, str(path))
    return path


# How Inductor builds the CPU kernels, recorded in the sidecar so that classviz knows:
# threads "dynamic" reads the thread count at run time (omp_get_max_threads), so that
# `classviz --threads` reaches the compiled kernels; by default Inductor bakes in the
# compiling machine's count.
CPU_INDUCTOR = {"cpp.dynamic_threads": True}

# Inductor settings tried in turn when a package does not compile or does not match
# the TorchScript model: with torch 2.11 ConvNeXt's and Swin's steps compile to a zero
# gradient unless the kernels keep their order (reorder_for_locality off), and on some
# CPUs a vectorised blendv kernel does not compile at AVX-512 (AVX2, then no vectors).
FALLBACKS = [{}, {"reorder_for_locality": False}, {"reorder_for_locality": False, "cpp.simdlen": 256},
             {"reorder_for_locality": False, "cpp.simdlen": 1}]


class Mismatch(Exception):
    """A compiled package that does not match the TorchScript model."""


class NoPackage(Exception):
    """No Inductor setting compiles a package that matches the model: the exporter
    keeps the TorchScript file (one warning line), this script's own command fails."""


def inductor_settings(device, fallback):
    """Inductor's settings for `device`'s package with `fallback`, and how the sidecar
    records them."""
    settings = {**(CPU_INDUCTOR if device == "cpu" else {}), **fallback}
    recorded = {"threads": "dynamic"} if device == "cpu" else {}
    if fallback:
        recorded["inductor"] = {key.replace("cpp.", "cpp_"): value for key, value in fallback.items()}
    return settings, recorded


def compile_program(program_path, pt_path, device):
    """Compile the saved step program for `device`, check it, record it in the sidecar:
    with Inductor's defaults, else the first fallback that compiles and matches."""
    program = torch.export.load(str(program_path))
    batch = static_batch(program)
    # Re-exported on the device: the same path for the CPU as for CUDA.
    module = program.module().to(device)
    inputs = [t.to(device) for t in program.example_inputs[0]]
    dynamic = None if batch else tuple({0: torch.export.Dim("rows", min=1, max=MAX_ROWS)} for _ in inputs)
    program = torch.export.export(module, tuple(inputs), dynamic_shapes=dynamic)
    package = pt_path.with_name(f"{pt_path.stem}.{device}.pt2")
    partial = package.with_name(f".{package.stem}.partial.pt2")
    why = []
    for fallback in FALLBACKS:
        settings, recorded = inductor_settings(device, fallback)
        started = time.time()
        try:
            with torch._inductor.config.patch(settings):
                torch._inductor.aoti_compile_and_package(program, package_path=str(partial))
            check_package(partial, pt_path, device, batch)
        except Mismatch as err:
            why.append(f"{fallback or 'defaults'}: {err}")
            continue
        except Exception as err:  # the generated C++ does not compile here
            partial.unlink(missing_ok=True)
            why.append(f"{fallback or 'defaults'}: {str(err).strip().splitlines()[0][:160]}")
            continue
        seconds = time.time() - started
        record(package, partial, pt_path, device, batch, recorded)
        size = package.stat().st_size / 1e6
        settled = f", Inductor {recorded['inductor']}" if fallback else ""
        print(f"{package}: compiled for {device} in {seconds:.0f} s ({size:.0f} MB), batch {batch or 'any'}{settled}")
        return seconds
    raise NoPackage(f"no Inductor setting compiles a package that matches {pt_path.name}: " + "; ".join(why))


def static_batch(program):
    """The program's batch size, or None if it is dynamic (it has range constraints)."""
    return None if program.range_constraints else int(program.example_inputs[0][0].shape[0])


def check_package(package, pt_path, device, batch):
    """The package's scores and gradient must match the TorchScript file's: the scores at
    the zero image and at noisy images, the gradient at either (see PACKAGE_TOLERANCE);
    at two batch sizes where the batch is dynamic."""
    sidecar = read_sidecar(pt_path)
    sidecar["_dir"] = str(pt_path.parent)
    shape, classes, taps, tap_shapes = layout(sidecar)
    loaded = torch._inductor.aoti_load_package(str(package))
    script = torch.jit.load(str(pt_path), map_location=device)
    classes = classes or scores_of(script(torch.zeros(1, *shape, device=device))).shape[1]
    script_step = step_function(script, taps)
    worst = {"scores": 0.0, "gradient": 0.0}
    for rows in ([batch] if batch else [1, 3]):
        gradient_errors = []
        for scale in (0.0, CHECK_INPUT_SCALE):
            inputs = example_inputs(rows, shape, classes, taps, tap_shapes, device)
            inputs[0] = inputs[0] * scale
            compiled, reference = loaded(*inputs), script_step(*inputs)
            check_close(package, "scores", compiled[0], reference[0], rows, worst)
            gradient_errors.append(relative_error(compiled[-1], reference[-1]))
        worst["gradient"] = max(worst["gradient"], min(gradient_errors))
        if not min(gradient_errors) <= PACKAGE_TOLERANCE:
            package.unlink(missing_ok=True)
            raise Mismatch(f"the compiled gradient differs from TorchScript's by {min(gradient_errors):.2e} "
                           f"(relative) at batch {rows}")
    print(f"{package.name}: within {worst['scores']:.1e} (scores) and {worst['gradient']:.1e} (gradient) of TorchScript's")


def relative_error(got, want):
    """||got − want|| / ||want||; two zero tensors agree."""
    difference = (got - want).norm()
    return 0.0 if difference == 0 else (difference / want.norm().clamp_min(1e-12)).item()


def check_close(package, label, got, want, rows, worst):
    """Refuse the package (one line) if `got` is not within the tolerance of `want`."""
    error = relative_error(got, want)
    worst[label] = max(worst[label], error)
    if not error <= PACKAGE_TOLERANCE:
        package.unlink(missing_ok=True)
        raise Mismatch(f"the compiled {label} differ from TorchScript's by {error:.2e} (relative) at batch {rows}")


def record(package, partial, pt_path, device, batch, recorded):
    """Move the checked package into place and record it in the model's sidecar."""
    sidecar = sidecars.read(pt_path)
    model_sha256 = sidecars.sha256(pt_path)
    if sidecar.get("sha256") != model_sha256:
        fail(f"{pt_path} does not match its sidecar's sha256: export the model again first")
    digest = sidecars.sha256(partial)
    partial.replace(package)
    entry = {
        "file": package.name,
        "device": device,
        "batch": batch,
        "input_shape": sidecar["input_shape"],
        "taps": [t["name"] for t in sidecar.get("taps", [])],
        "sha256": digest,
        "model_sha256": model_sha256,
        "torch": torch.__version__.split("+")[0],
        **recorded,
    }
    others = [p for p in sidecar.get("compiled", []) if p.get("device") != device]
    sidecars.update(pt_path, compiled=others + [entry])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("program", type=Path, help="<stem>.step.pt2, written by weights/export.py --compile")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device here; run this on the GPU machine")
    if not args.program.is_file():
        fail(f"{args.program} not found: weights/export.py --compile writes it")
    pt_path = args.program.with_name(args.program.name.removesuffix(".step.pt2") + ".pt")
    if not pt_path.is_file():
        fail(f"{pt_path}, the model the step belongs to, is not beside {args.program}")
    try:
        compile_program(args.program, pt_path, args.device)
    except NoPackage as err:
        fail(str(err))


if __name__ == "__main__":
    main()
