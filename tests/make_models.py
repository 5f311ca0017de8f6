#!/usr/bin/env python3
"""Build the small TorchScript models the integration tests run classviz on.

Writes into tests/models/ (gitignored):
  linear.pt / .json / _weight.json  logits = W·flatten(x) + b on [3, 8, 8] inputs, 5 classes.
                                    Parameters are left requiring grad (not frozen), as a
                                    user's own export would be. The ascent on
                                    S_c − λ‖x‖² has the closed-form optimum x* = W_c / (2λ).
  dead_relu.pt / .json              logits = W·relu(flatten(x)) + b: at the zero image every ReLU sits
                                    exactly at 0, where its gradient is 0, so the paper's ascent from
                                    zero stalls (as ReLU6 does for some classes of EfficientNet-Lite);
                                    a noisy start moves it.
  detector.pt / .json               a tapped model with hand-set weights: its forward returns
                                    {"logits", "detect"}, and tap "detect" (3x16x16) has channel 0
                                    = red minus green and blue (a colour detector), channel 1 = the
                                    squared response of a vertical-edge (Sobel x) filter, channel 2
                                    = the same for horizontal edges.
  wrong_output.pt / .json           a model whose output is [N, 5, 2], not [N, classes].
  tuple_output.pt, dict_output.pt,  the linear model returning (logits, features), a dict
  dict_scores.pt, softmax.pt        {"features", "logits"}, a dict {"scores"} only, and
                                    softmax(logits): the output shapes users bring.
  digits.pt / digits_b.pt (+ .json) two CNNs trained here from scratch on scikit-learn's
                                    bundled load_digits (1797 real 8x8 handwritten digits,
                                    upsampled to 1x28x28), with different seeds and
                                    architectures; each must reach >= 95% held-out accuracy.
  digits_vit_state.pt,              a tiny ViT (torchvision's VisionTransformer) and a tiny CNN
  digits_cnn_state.pt               trained on the same digits as RGB 32x32 (>= 93% held out),
                                    as state dicts for weights/export.py --entry (the Makefile
                                    exports them), with digits_pair.json (normalisation, the
                                    ViT's arguments), digits_labels.txt and digits_test/, 30
                                    held-out digits as PNGs named <k>_<label>.png.
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from classviz import sidecar as sidecars  # noqa: E402

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


class DeadRelu(Linear):
    def forward(self, x):
        return self.fc(torch.relu(x.flatten(1)))


class Detector(torch.nn.Module):
    """A tap whose channels are known detectors: colour, vertical and horizontal edges."""

    def __init__(self):
        super().__init__()
        self.detect = torch.nn.Conv2d(3, 3, 3, padding=1, bias=False)
        weight = torch.zeros(3, 3, 3, 3)
        weight[0, 0, 1, 1], weight[0, 1, 1, 1], weight[0, 2, 1, 1] = 1.0, -0.5, -0.5
        sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        for c in range(3):
            weight[1, c] = sobel_x / 3
            weight[2, c] = sobel_x.t() / 3
        with torch.no_grad():
            self.detect.weight.copy_(weight)
        self.head = torch.nn.Linear(3, 2)

    def forward(self, x):
        response = self.detect(x)
        detect = torch.cat([response[:, :1], response[:, 1:].square()], 1)
        return {"logits": self.head(detect.mean((2, 3))), "detect": detect}


class WrongOutput(Linear):
    def forward(self, x):
        y = self.fc(x.flatten(1))
        return torch.stack([y, -y], dim=-1)


class TupleOutput(Linear):
    def forward(self, x):
        return self.fc(x.flatten(1)), x.flatten(1)


class DictOutput(Linear):
    def forward(self, x):
        return {"features": x.flatten(1), "logits": self.fc(x.flatten(1))}


class DictScores(Linear):
    def forward(self, x):
        return {"features": x.flatten(1), "scores": self.fc(x.flatten(1))}


class Softmax(Linear):
    def forward(self, x):
        return self.fc(x.flatten(1)).softmax(-1)


def save(module, name, **sidecar):
    """`module` as <name>.pt with its sidecar, through the project's one sidecar writer
    (python/classviz/sidecar.py), the file's SHA-256 recorded."""
    path = OUT / f"{name}.pt"
    sidecars.save(module, path, sidecars.make(name=name, **sidecar))


def linear_sidecar():
    return {"input_shape": SHAPE, "mean": MEAN, "std": STD, "labels": LABELS}


DIGIT_SIZE = 28
MIN_ACCURACY = 0.95


class DigitsA(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class DigitsB(torch.nn.Module):
    """A different architecture: 5x5 stem, average pooling, adaptive pooling, MLP head."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 12, 5, padding=2), torch.nn.ELU(), torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(12, 24, 3, padding=1), torch.nn.ELU(), torch.nn.AdaptiveAvgPool2d(4),
        )
        self.head = torch.nn.Sequential(torch.nn.Linear(24 * 16, 64), torch.nn.ELU(), torch.nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def digits_data():
    """load_digits as [N, 1, 28, 28] images in [0, 1], split 80/20 with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = torch.nn.functional.interpolate(images, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False)
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(labels))
    return (images[order[:cut]], labels[order[:cut]]), (images[order[cut:]], labels[order[cut:]])


def train_digits(architecture, seed, train, test, mean, std, epochs=20):
    torch.manual_seed(seed)
    model = architecture()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = train
    x = (images - mean) / std
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(labels)).split(64):
            # Small random shifts make the digits model less brittle.
            shift = [int(v) for v in torch.randint(-2, 3, (2,))]
            xb = torch.roll(x[batch], shifts=shift, dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(xb), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model((test[0] - mean) / std).argmax(1) == test[1]).float().mean().item()
    return model, accuracy


def export_digits():
    train, test = digits_data()
    mean, std = train[0].mean().item(), train[0].std().item()
    for name, architecture, seed in (("digits", DigitsA, 1), ("digits_b", DigitsB, 2)):
        model, accuracy = train_digits(architecture, seed, train, test, mean, std)
        if accuracy < MIN_ACCURACY:
            sys.exit(f"make_models.py: {name} reached only {accuracy:.3f} held-out accuracy (< {MIN_ACCURACY})")
        with torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(model, torch.zeros(1, 1, DIGIT_SIZE, DIGIT_SIZE)))
        save(frozen, name, input_shape=[1, DIGIT_SIZE, DIGIT_SIZE], mean=[mean], std=[std],
             labels=[str(d) for d in range(10)],
             source=f"tests/make_models.py: trained on sklearn load_digits, {accuracy:.3f} held-out accuracy")
        print(f"{name}: {accuracy:.3f} held-out accuracy on {len(test[1])} digits", file=sys.stderr)


# The pair of digit classifiers exported through weights/export.py --entry: a ViT
# (torchvision's VisionTransformer, whose attention has the fused fast path the exporter
# turns off) and a CNN, on RGB 16x16 digits, for the model-family tests.
PAIR_SIZE = 32
PAIR_MIN_ACCURACY = 0.93
# torchvision.models.VisionTransformer(**VIT_DIGITS): 4x4 patches (an 8x8 grid), three blocks.
VIT_DIGITS = {"image_size": PAIR_SIZE, "patch_size": 4, "num_layers": 3, "num_heads": 4, "hidden_dim": 48,
              "mlp_dim": 96, "num_classes": 10}
HELD_OUT_DIGITS = 30


def rgb_digits(size):
    (xtr, ytr), (xte, yte) = digits_data()

    def resize(x):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x.repeat(1, 3, 1, 1)

    return (resize(xtr), ytr), (resize(xte), yte)


def train_pair_model(model, train, test, mean, std, epochs=40):
    """AdamW with a one-cycle schedule and one-pixel shifts: 98% for the ViT in about 10 s."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    x = (train[0] - mean) / std
    steps = epochs * ((len(x) + 63) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x)).split(64):
            shift = [int(v) for v in torch.randint(-1, 2, (2,))]
            xb = torch.roll(x[batch], shifts=shift, dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(xb), train[1][batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        return (model((test[0] - mean) / std).argmax(1) == test[1]).float().mean().item()


def train_digit_pair():
    """State dicts for the exporter (digits_vit_state.pt, digits_cnn_state.pt), the
    normalisation and labels, and held-out digits as PNGs (digits_test/<k>_<label>.png)."""
    import torchvision
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from checkpoint_module import digits_cnn

    train, test = rgb_digits(PAIR_SIZE)
    mean, std = train[0].mean().item(), train[0].std().item()
    for name, build, seed in (("vit", lambda: torchvision.models.VisionTransformer(**VIT_DIGITS), 7),
                              ("cnn", digits_cnn, 8)):
        torch.manual_seed(seed)
        model = build()
        accuracy = train_pair_model(model, train, test, mean, std)
        if accuracy < PAIR_MIN_ACCURACY:
            sys.exit(f"make_models.py: the digits {name} reached only {accuracy:.3f} held-out accuracy")
        torch.save(model.state_dict(), OUT / f"digits_{name}_state.pt")
        print(f"digits_{name}: {accuracy:.3f} held-out accuracy", file=sys.stderr)
    (OUT / "digits_labels.txt").write_text("\n".join(str(d) for d in range(10)) + "\n")
    (OUT / "digits_pair.json").write_text(json.dumps({"mean": mean, "std": std, "vit": VIT_DIGITS}))
    held_out = OUT / "digits_test"
    held_out.mkdir(exist_ok=True)
    for k in range(HELD_OUT_DIGITS):
        pixels = (test[0][k].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        Image.fromarray(pixels).save(held_out / f"{k:02d}_{int(test[1][k])}.png")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1234)
    linear = Linear().eval()
    save(torch.jit.script(linear), "linear", **linear_sidecar())
    weight = {"shape": list(linear.fc.weight.shape), "weight": linear.fc.weight.detach().flatten().tolist()}
    (OUT / "linear_weight.json").write_text(json.dumps(weight))

    for name, cls in (
        ("dead_relu", DeadRelu),
        ("wrong_output", WrongOutput),
        ("tuple_output", TupleOutput),
        ("dict_output", DictOutput),
        ("dict_scores", DictScores),
        ("softmax", Softmax),
    ):
        model = cls().eval()
        model.load_state_dict(linear.state_dict())
        save(torch.jit.script(model), name, **linear_sidecar())
    export_digits()
    train_digit_pair()

    torch.manual_seed(5)
    detector = Detector().eval()
    save(torch.jit.script(detector), "detector", input_shape=[3, 16, 16], mean=[0.5, 0.5, 0.5],
         std=[0.25, 0.25, 0.25], labels=["a", "b"], taps=[{"name": "detect", "shape": [3, 16, 16]}])

    # A user's own module and state dict, for weights/export.py --checkpoint.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from checkpoint_module import build, build_tokens

    torch.manual_seed(3)
    torch.save(build().state_dict(), OUT / "tiny_state.pt")
    # A transformer-shaped one whose tap returns tokens [N, T, C].
    torch.save(build_tokens().state_dict(), OUT / "tokens_state.pt")
    (OUT / "tiny_labels.txt").write_text("cat\ndog\nbird\n")
    print(f"test models written to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
