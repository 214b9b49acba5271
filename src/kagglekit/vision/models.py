"""Image classifiers for the shared registry; every builder takes in_chans and num_classes from
the data. `timm:<name>` in a config means any timm model (no download: `pretrained` is a file)."""

from __future__ import annotations

import torch.nn as nn

from kagglekit.vision import MODELS


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return x + self.body(x)


@MODELS.register("resnet9")
class ResNet9(nn.Module):
    """DAWNBench / airbench-style ResNet-9: prep, (conv, pool, residual), conv+pool, (conv, pool,
    residual), global max pool, linear with a fixed output scale. `width` = prep channels (64)."""

    def __init__(self, in_chans: int = 3, num_classes: int = 10, width: int = 64, scale: float = 0.125):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(in_chans, w),
            conv_bn(w, 2 * w),
            nn.MaxPool2d(2),
            Residual(2 * w),
            conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),
            conv_bn(4 * w, 8 * w),
            nn.MaxPool2d(2),
            Residual(8 * w),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(8 * w, num_classes, bias=False)
        self.scale = scale

    def forward(self, x):
        return self.head(self.features(x)) * self.scale  # (B, num_classes)


@MODELS.register("alexnet")
class AlexNet(nn.Module):
    """HiRISENet-style AlexNet sized for the input: the 11x11 stride-4 stem for large images
    (>= 128 px), a 5x5 stride-1 stem for small ones; adaptive pooling before the classifier."""

    def __init__(self, in_chans: int = 1, num_classes: int = 8, width: float = 1.0, image_size: int = 227, dropout: float = 0.5):
        super().__init__()
        c = [max(8, int(v * width)) for v in (64, 192, 384, 256, 256)]
        large = image_size >= 128
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c[0], 11 if large else 5, 4 if large else 1, 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3 if large else 2, 2),
            nn.Conv2d(c[0], c[1], 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3 if large else 2, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(3),
            nn.Flatten(),
        )
        hidden = max(64, int(1024 * width))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c[4] * 9, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@MODELS.register("vgg")
class VGG(nn.Module):
    """VGG-style stacks of 3x3 conv + BN with max pooling; `stages` gives the convs per stage."""

    def __init__(
        self, in_chans: int = 1, num_classes: int = 10, width: int = 32, stages: tuple[int, ...] = (2, 2, 2), dropout: float = 0.3
    ):
        super().__init__()
        layers, cin = [], in_chans
        for k, n in enumerate(stages):
            cout = width * 2**k
            for _ in range(n):
                layers.append(conv_bn(cin, cout))
                cin = cout
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@MODELS.register("nin")
class NIN(nn.Module):
    """Network in Network: mlpconv blocks (a spatial conv followed by two 1x1 convs), global
    average pooling of per-class maps."""

    def __init__(self, in_chans: int = 1, num_classes: int = 10, width: int = 96, dropout: float = 0.3):
        super().__init__()

        def mlpconv(cin, cout, kernel):
            return nn.Sequential(conv_bn(cin, cout, kernel), conv_bn(cout, cout, 1), conv_bn(cout, cout, 1))

        w = width
        self.net = nn.Sequential(
            mlpconv(in_chans, w, 5),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            mlpconv(w, 2 * w, 5),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            mlpconv(2 * w, 2 * w, 3),
            nn.Conv2d(2 * w, num_classes, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.net(x)


def build_classifier(name: str, in_chans: int, num_classes: int, kwargs: dict) -> nn.Module:
    """Registry model or `timm:<name>` (random init; `pretrained` is loaded by the task)."""
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[len("timm:") :], pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs)
    return MODELS.build(name, in_chans=in_chans, num_classes=num_classes, **kwargs)
