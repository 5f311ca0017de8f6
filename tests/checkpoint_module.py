"""A user's own classifier, for testing `weights/export.py --checkpoint`."""

import torch


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def build():
    return TinyNet()


class TinyTokens(torch.nn.Module):
    """A transformer-shaped classifier: 4x4 patches of a 16x16 image become 16
    tokens after a class token; `blocks` returns the tokens [N, 17, 8]."""

    def __init__(self):
        super().__init__()
        self.patches = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.token = torch.nn.Parameter(torch.zeros(1, 1, 8))
        self.blocks = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.GELU())
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.token.expand(x.shape[0], -1, -1), tokens], 1)
        tokens = self.blocks(tokens)
        return self.head(tokens[:, 0] + tokens[:, 1:].mean(1))


class Normed(TinyNet):
    """A classifier of the input divided by its norm: the gradient is not finite at
    the zero image (0/0), as MaxViT's is, and is everywhere else."""

    def forward(self, x):
        norm = x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return super().forward(x / norm)


def build_normed():
    torch.manual_seed(6)
    return Normed()


def build_tokens():
    torch.manual_seed(4)
    return TinyTokens()


def digits_cnn():
    """A tiny CNN for RGB digits: three convolutions (the second and third at 1/2 and
    1/4 of the input), global average pooling, a linear head."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 48, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(48, 10),
    )


class Branchy(torch.nn.Module):
    """Data-dependent control flow, which torch.jit.trace bakes in: the exporter must refuse it."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(3, 2)

    def forward(self, x):
        pooled = x.mean((2, 3))
        if pooled.sum() > 0:
            return self.head(pooled)
        return -self.head(pooled)


def branchy():
    return Branchy()


class OddTokens(torch.nn.Module):
    """Tokens that are no patch grid: 7 of them for a 16x16 input."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(3, 8)
        self.blocks = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        tokens = self.embed(torch.nn.functional.adaptive_avg_pool2d(x, (1, 7)).flatten(2).transpose(1, 2))
        return self.head(self.blocks(tokens).mean(1))


def odd_tokens():
    return OddTokens()
