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


def build_tokens():
    torch.manual_seed(4)
    return TinyTokens()
