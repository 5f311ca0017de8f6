"""The one writer of classviz's model sidecars, `<stem>.json` beside `<stem>.pt`.

The sidecar says what the network expects (input shape, mean and std in [0,1] units),
where its labels are, which taps it returns, its SHA-256 (classviz refuses a model file
that does not match), and the compiled packages and randomised variants made from it.
Every tool that writes one (the exporter, compile_step, the test fixtures) goes through
`write` or `update`, so the keys are spelled once; classviz reads them in
crates/classviz-records/src/sidecar.rs and refuses unknown ones.
"""

import hashlib
import json
from pathlib import Path

KEYS = ("name", "source", "input_shape", "mean", "std", "labels", "output", "taps", "sha256", "compiled", "randomised",
        "finite_gradient_at_zero")


def path_of(model_path):
    return Path(model_path).with_suffix(".json")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_atomic(path, text):
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_module(module, path):
    """Save a TorchScript `module` at `path` by way of a temp file; its SHA-256 (hex)."""
    path = Path(path)
    tmp = path.with_suffix(".pt.tmp")
    module.save(str(tmp))
    digest = sha256(tmp)
    tmp.replace(path)
    return digest


def save(module, model_path, sidecar):
    """Save the TorchScript `module` at `model_path` and its `sidecar`, with the
    file's SHA-256 recorded in it: the one way a model file and its sidecar are written."""
    written = dict(sidecar, sha256=save_module(module, model_path))
    write(model_path, written)
    return written


def make(*, name, input_shape, mean, std, source=None, labels=None, taps=None, output=None, sha256=None):
    """A sidecar as a dict, in the order classviz documents its keys."""
    sidecar = {"name": name}
    if source:
        sidecar["source"] = source
    sidecar.update({"input_shape": list(input_shape), "mean": list(mean), "std": list(std)})
    if labels is not None:
        sidecar["labels"] = labels
    if taps:
        sidecar["output"] = "logits"
        sidecar["taps"] = list(taps)
    elif output is not None:
        sidecar["output"] = output
    if sha256:
        sidecar["sha256"] = sha256
    return sidecar


def write(model_path, sidecar):
    unknown = sorted(set(sidecar) - set(KEYS))
    if unknown:
        raise ValueError(f"sidecar keys classviz does not read: {', '.join(unknown)}")
    write_atomic(path_of(model_path), json.dumps(sidecar, indent=2) + "\n")


def read(model_path):
    return json.loads(path_of(model_path).read_text())


def update(model_path, **changes):
    """Rewrite the sidecar of `model_path` with `changes` (a value of None removes a key)."""
    sidecar = read(model_path)
    for key, value in changes.items():
        if value is None:
            sidecar.pop(key, None)
        else:
            sidecar[key] = value
    write(model_path, sidecar)
    return sidecar


def intact(model_path):
    """Whether `model_path` and its sidecar exist and the file is the one it records."""
    model_path = Path(model_path)
    if not (model_path.is_file() and path_of(model_path).is_file()):
        return False
    return read(model_path).get("sha256") == sha256(model_path)
