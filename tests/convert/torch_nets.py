"""Small PyTorch networks for conversion tests, and their ONNX / .pt2 / Keras files.

torchvision does not import beside the CPU torch build the tests run on, so the
MobileNetV2-like network is written out here: inverted residual blocks (1x1 expand,
3x3 depthwise, 1x1 project, a residual where shapes allow) as in Sandler et al., 2018.
"""

from __future__ import annotations

from pathlib import Path


def mobilenet_like(width: int = 16, classes: int = 10):
    """A MobileNetV2-like CNN for 3x96x96 inputs (about 1.6 M MACs per 1,000 pixels)."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int, expand: int = 4) -> nn.Module:
        hidden = cin * expand
        return nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    class Residual(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.body = block(channels, channels, 1)

        def forward(self, x):
            return x + self.body(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6(),
                block(width, 24, 2), Residual(24), block(24, 32, 2), Residual(32),
                nn.Conv2d(32, 64, 1), nn.ReLU6())
            self.head = nn.Linear(64, classes)

        def forward(self, x):
            pooled = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.head(torch.flatten(pooled, 1))

    torch.manual_seed(0)
    return Net().eval()


def example_input():
    import torch

    return torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))


def save_onnx(path: Path) -> Path:
    """The network exported by PyTorch's ONNX exporter (TorchScript-based: no onnxscript)."""
    import torch

    torch.onnx.export(mobilenet_like(), (example_input(),), str(path), dynamo=False,
                      input_names=["image"], output_names=["logits"])
    return path


def save_pt2(path: Path) -> Path:
    """The network as a ``torch.export`` program file."""
    import torch

    torch.export.save(torch.export.export(mobilenet_like(), (example_input(),)), str(path))
    return path
