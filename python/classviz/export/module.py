"""Your own nn.Module: `--entry package.module:factory` builds it (called with --kwargs),
`--checkpoint FILE` holds its state dict (or --random-init). The module is imported
from the current directory as well as the Python path."""

import importlib
import sys
from pathlib import Path

from classviz.export.common import Found, fail, first_line


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


def found(args, kwargs):
    if not (args.checkpoint or args.random_init):
        fail("--entry needs --checkpoint FILE (the state dict) or --random-init")
    build = factory(args.entry)
    try:
        model = build(**kwargs)
    except Exception as err:
        fail(f"--entry {args.entry}: the factory failed ({first_line(err)}); check --kwargs")
    return Found(model=model, name=args.entry.partition(":")[2], shape=None, mean=None, std=None,
                 what=args.entry, weights="", prefix_tokens=getattr(model, "num_prefix_tokens", None))
