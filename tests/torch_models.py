"""Real torch.nn models as PyTorch users write them, exported with torch.onnx.export's default
arguments (PyTorch 2.x: the dynamo exporter, weights in a .onnx.data file next to the graph)."""

from __future__ import annotations

from pathlib import Path


def _modules():
    import torch
    from torch import nn

    class MobileNetStyle(nn.Module):
        """Conv2d+BatchNorm+ReLU6, a depthwise Conv2d, a residual add, a pointwise Conv2d, AdaptiveAvgPool
        and a Linear head: the ops every runtime runs."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
            self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6())
            self.pointwise = nn.Conv2d(8, 16, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            x = self.stem(x)
            x = x + self.depthwise(x)
            return self.head(torch.flatten(self.pool(self.pointwise(x)), 1))

    class GroupedHardswishCnn(nn.Module):
        """A grouped Conv2d and Hardswish, as MobileNetV3-style models use them."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8), nn.Hardswish())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(torch.flatten(self.pool(self.conv(x)), 1))

    class KeywordConv1d(nn.Module):
        """A 1-D conv keyword net: Conv1d, a depthwise and a grouped Conv1d, SiLU, AdaptiveAvgPool1d."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv1d(10, 16, 3, padding=1), nn.BatchNorm1d(16), nn.SiLU())
            self.depthwise = nn.Conv1d(16, 16, 5, padding=2, groups=16)
            self.grouped = nn.Conv1d(16, 16, 1, groups=4)
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            x = self.conv(x)
            x = x + torch.relu(self.grouped(self.depthwise(x)))
            return self.head(self.pool(x).flatten(1))

    class ActivationsMlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 24), nn.SiLU(), nn.Linear(24, 24),
                                     nn.Hardswish(), nn.Linear(24, 3))

        def forward(self, x):
            return self.net(x)

    class GeluMlp(nn.Module):
        """A transformer-style feed-forward block: Linear, GELU (exact, then the tanh approximation), Linear."""

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(approximate="tanh"),
                                     nn.Linear(32, 4))

        def forward(self, x):
            return self.net(x)

    class Recurrent(nn.Module):
        """A keyword-style recurrent net: 20 frames of 10 features, an LSTM or GRU, a Linear head on the last
        step (or on every step, `sequence`)."""

        def __init__(self, cell, layers=1, sequence=False, bidirectional=False):
            super().__init__()
            self.rnn = cell(10, 16, num_layers=layers, batch_first=True, bidirectional=bidirectional)
            self.head = nn.Linear(32 if bidirectional else 16, 3)
            self.sequence = sequence

        def forward(self, x):
            y = self.rnn(x)[0]
            return self.head(y if self.sequence else y[:, -1])

    class ConvGru(nn.Module):
        """A CRNN: a Conv1d+BatchNorm+ReLU+MaxPool front end over (features, time), then a GRU over time and a
        Linear head."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv1d(10, 12, 3, padding=1), nn.BatchNorm1d(12), nn.ReLU(), nn.MaxPool1d(2))
            self.rnn = nn.GRU(12, 16, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.rnn(self.conv(x).transpose(1, 2))[0][:, -1])

    return {
        "mobilenet_style": (MobileNetStyle, (1, 3, 16, 16)),
        "keyword_conv1d": (KeywordConv1d, (1, 10, 20)),
        "grouped_hardswish_cnn": (GroupedHardswishCnn, (1, 4, 8, 8)),
        "activations_mlp": (ActivationsMlp, (1, 12)),
        "gelu_mlp": (GeluMlp, (1, 16)),
        "lstm": (lambda: Recurrent(nn.LSTM), (1, 20, 10)),
        "gru": (lambda: Recurrent(nn.GRU), (1, 20, 10)),
        "conv_gru": (ConvGru, (1, 10, 20)),
        "lstm_2_layers_sequence": (lambda: Recurrent(nn.LSTM, layers=2, sequence=True), (1, 20, 10)),
        "bidirectional_gru": (lambda: Recurrent(nn.GRU, bidirectional=True), (1, 20, 10)),
    }


MODELS = ("mobilenet_style", "keyword_conv1d", "grouped_hardswish_cnn", "activations_mlp", "lstm", "gru")
# PyTorch's recurrent layers: tinyedge converts these itself (onnx2tf cannot).
RECURRENT = ("lstm", "gru", "conv_gru", "lstm_2_layers_sequence")


def export(name: str, folder: Path, **options) -> tuple[Path, tuple[int, ...]]:
    """Export the model as a user would (default arguments, unless `options` are given, e.g. the legacy
    exporter's dynamo=False); returns the .onnx and its input shape."""
    import torch

    build, shape = _modules()[name]
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():   # BatchNorm statistics that are not the identity
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    path = folder / f"{name}.onnx"
    torch.onnx.export(model, (torch.randn(*shape),), str(path), **options)
    return path, shape
