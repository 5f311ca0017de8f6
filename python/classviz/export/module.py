"""Your own nn.Module: `--entry package.module:factory` builds it (called with --kwargs),
`--checkpoint FILE` holds its state dict (or --random-init). The module is imported
from the current directory as well as the Python path."""

import importlib
import sys
from pathlib import Path

from classviz.export.common import (
    Source, channel_values, class_count, fail, first_line, input_shape, labels_from,
    load_weights,
)


def factory(entry):
    module_name, _, name = entry.partition(":")
    if not module_name or not name:
        fail(f"--entry {entry}: expected module.path:factory")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        fail(f"--entry {entry}: cannot import {module_name} ({first_line(err)})")
    built = getattr(module, name, None)
    if not callable(built):
        fail(f"--entry {entry}: {module_name} has no callable {name}")
    return built


def source(args, kwargs):
    if not (args.checkpoint or args.random_init):
        fail("--entry needs --checkpoint FILE (the state dict) or --random-init")
    build = factory(args.entry)
    try:
        model = build(**kwargs)
    except Exception as err:
        fail(f"--entry {args.entry}: the factory failed ({first_line(err)}); check --kwargs")
    if args.checkpoint:
        load_weights(model, args.checkpoint, args.entry)
    shape = input_shape(args, None)
    mean, std = channel_values(args, shape[0], None, None)
    model.eval()
    classes = class_count(model, shape)
    state = f"with {args.checkpoint}" if args.checkpoint else "random initialisation (untrained)"
    name = args.name or args.entry.partition(":")[2]
    return Source(model=model, name=name, shape=shape, mean=mean, std=std, labels=labels_from(args, classes),
                  description=f"{args.entry} {state}, traced and frozen by classviz-export",
                  prefix_tokens=getattr(model, "num_prefix_tokens", None))
