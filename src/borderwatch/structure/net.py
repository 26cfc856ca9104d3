"""The structure-change network: an early-fusion U-Net (PyTorch, the ``[train]`` extra).

Input ``(n, 6, rows, cols)``: standardised red, green, blue before, then after
(:func:`borderwatch.structure.prep.stack_input`), rows and columns multiples of
``2 ** (len(widths) - 1)``. Output ``(n, 1, rows, cols)`` logits of "new structure"
(:class:`UNet`) or probabilities (:class:`WithSigmoid`, what is exported to ONNX).
``len(widths) - 1`` 2x poolings, two 3x3 convolutions with batch normalisation and
ReLU per level, channel widths ``widths`` (:data:`WIDTHS`); Ronneberger et al. 2015,
with the dates stacked as channels (Daudt et al. 2018, "FC-EF").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["WIDTHS", "UNet", "WithSigmoid", "n_parameters"]

#: Default channels per level, finest first (five poolings, about 1.9 M parameters).
WIDTHS = (8, 16, 32, 64, 128, 256)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Early-fusion U-Net with ``len(widths) - 1`` poolings.

    Parameters
    ----------
    in_channels : int
        Input channels (6: two RGB dates).
    widths : sequence of int
        Channels per level, finest first.
    """

    def __init__(self, in_channels: int = 6, widths: Sequence[int] = WIDTHS):
        super().__init__()
        w = list(widths)
        self.down = nn.ModuleList(
            _block(c_in, c_out) for c_in, c_out in zip([in_channels, *w[:-1]], w, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(len(w) - 1))
        )
        self.merge = nn.ModuleList(_block(2 * w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Input rows and columns must be multiples of this (``2 ** poolings``)."""
        return int(2 ** (len(self.down) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, 1, rows, cols)`` of new structure."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


class WithSigmoid(nn.Module):
    """A network whose output is the change probability (the exported graph)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability ``(n, 1, rows, cols)`` of new structure, 0-1."""
        return torch.sigmoid(self.net(x))


def n_parameters(net: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
