#!/usr/bin/env python3
"""Build the small TorchScript models the integration tests run classviz on.

Writes into tests/models/ (gitignored):
  linear.pt / .json / _weight.json  logits = W·flatten(x) + b on [3, 8, 8] inputs, 5 classes.
                                    Parameters are left requiring grad (not frozen), as a
                                    user's own export would be. The ascent on
                                    S_c − λ‖x‖² has the closed-form optimum x* = W_c / (2λ).
  wrong_output.pt / .json           a model whose output is [N, 5, 2], not [N, classes].
"""

import json
import sys
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "models"
SHAPE = (3, 8, 8)
CLASSES = 5
# Deliberately non-trivial normalisation, so that "adding the mean back" is tested.
MEAN = [0.5, 0.4, 0.3]
STD = [0.25, 0.2, 0.5]
LABELS = ["zero", "one", "two", "three", "four"]


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(SHAPE[0] * SHAPE[1] * SHAPE[2], CLASSES)

    def forward(self, x):
        return self.fc(x.flatten(1))


class WrongOutput(Linear):
    def forward(self, x):
        y = self.fc(x.flatten(1))
        return torch.stack([y, -y], dim=-1)


def sidecar(name):
    return {"name": name, "input_shape": list(SHAPE), "mean": MEAN, "std": STD, "labels": LABELS}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1234)
    linear = Linear().eval()
    torch.jit.script(linear).save(str(OUT / "linear.pt"))
    (OUT / "linear.json").write_text(json.dumps(sidecar("linear")))
    weight = {"shape": list(linear.fc.weight.shape), "weight": linear.fc.weight.detach().flatten().tolist()}
    (OUT / "linear_weight.json").write_text(json.dumps(weight))

    wrong = WrongOutput().eval()
    torch.jit.script(wrong).save(str(OUT / "wrong_output.pt"))
    (OUT / "wrong_output.json").write_text(json.dumps(sidecar("wrong_output")))
    print(f"test models written to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
