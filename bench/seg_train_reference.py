#!/usr/bin/env python3
"""PyTorch reference for the segmentation model's training speed (issue 16, point 9).

The same U-Net as fovea-nn's `models::unet`, layer for layer (`--encoder`):
- `small` (SmallUNet): five encoder stages of two 3x3 conv (no bias) + BatchNorm + ReLU,
  16-32-64-128-256 channels, 2x2 max pooling between them; four decoder stages of nearest
  2x upsampling, concatenation with the skip, two 3x3 conv + BatchNorm + ReLU (128, 64, 32,
  16 channels).
- `resnet18`, `resnet34` (ResNetUNet): torchvision's ResNet trunk (no avgpool / fc) as the
  encoder, skips at strides 2 (after conv1-bn1-relu, 64 channels), 4, 8, 16 (layer1..3),
  bottom layer4 (stride 32, 512 channels); five decoder stages of the same kind, 256, 128,
  64, 32, 16 channels, the first four concatenating a skip (layer3, layer2, layer1, stem),
  the last upsampling to full resolution without one.
Both end in a 1x1 conv head (with bias) to 4 logits whose bias starts at -ln(99). The
script prints the trainable parameter count, which bench/seg.sh compares with Fovea's.
Loss: fovea-nn's `seg_loss` defaults, per-pixel BCE-with-logits (mean)
plus the soft Dice per lesion over the batch (smooth 1), weights 1 and 1. Optimiser:
torch.optim.Adam(lr 1e-3). Data: one fixed random batch [B, 3, S, S] with random 0/1
targets at 1 % prevalence. A step = zero_grad + forward + loss + backward + update; 2
warm-up steps, then the median of --steps timed steps.

Prints `parameters N` and `samples_per_s X` (B / median step time). Defaults: small
encoder, S = 256, B = 8, 2 threads; `--channels-last` lays out the model and the input
NHWC (`torch.channels_last`).

Run with the project's PyTorch environment:
  ~/.cache/fovea/torch-2.13.0/bin/python bench/seg_train_reference.py
"""

import argparse
import math
import statistics
import time

import torch
from torch import nn

WIDTHS = [16, 32, 64, 128, 256]
PRIOR = 0.01


class DoubleConv(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = torch.relu_(self.bn1(self.conv1(x)))
        return torch.relu_(self.bn2(self.conv2(x)))


def init_convs(model):
    """torchvision's initialisation of every conv but the head, and the head's prior bias."""
    nn.init.constant_(model.head.bias, -math.log((1 - PRIOR) / PRIOR))
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m is not model.head:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class SmallUNet(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [3] + WIDTHS
        self.encoder = nn.ModuleList(DoubleConv(chans[i], chans[i + 1]) for i in range(5))
        dec = []
        c_in = WIDTHS[-1]
        for i, w in enumerate(reversed(WIDTHS[:-1])):
            dec.append(DoubleConv(c_in + w, w))
            c_in = w
        self.decoder = nn.ModuleList(dec)
        self.head = nn.Conv2d(c_in, 4, 1)
        init_convs(self)

    def forward(self, x):
        feats = []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else nn.functional.max_pool2d(x, 2))
            feats.append(x)
        y = feats[-1]
        for stage, skip in zip(self.decoder, reversed(feats[:-1])):
            y = nn.functional.interpolate(y, scale_factor=2, mode="nearest")
            y = stage(torch.cat([y, skip], 1))
        return self.head(y)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (same layers, names and in-place ops), written
    out so that the script needs only torch."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class ResNetTrunk(nn.Module):
    """torchvision's resnet18 / resnet34 without avgpool and fc (the same parameter names)."""

    BLOCKS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}

    def __init__(self, arch):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for i, (c, n) in enumerate(zip([64, 128, 256, 512], self.BLOCKS[arch])):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in, c, stride)] + [BasicBlock(c, c, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = c


class ResNetUNet(nn.Module):
    """fovea-nn's U-Net with a ResNet-18 / -34 encoder (`encoder.` + torchvision's names, as
    Fovea's)."""

    def __init__(self, arch):
        super().__init__()
        self.encoder = ResNetTrunk(arch)
        chans = [64, 64, 128, 256, 512]  # stem, layer1..4
        widths = [256, 128, 64, 32, 16]
        dec = []
        c_in = chans[-1]
        for i, w in enumerate(widths):
            skip = chans[3 - i] if i < 4 else 0
            dec.append(DoubleConv(c_in + skip, w))
            c_in = w
        self.decoder = nn.ModuleList(dec)
        self.head = nn.Conv2d(c_in, 4, 1)
        init_convs(self)

    def forward(self, x):
        e = self.encoder
        stem = e.relu(e.bn1(e.conv1(x)))
        y = e.maxpool(stem)
        feats = [stem]
        for layer in (e.layer1, e.layer2, e.layer3, e.layer4):
            y = layer(y)
            feats.append(y)
        y = feats[-1]
        for i, stage in enumerate(self.decoder):
            y = nn.functional.interpolate(y, scale_factor=2, mode="nearest")
            if i < 4:
                y = torch.cat([y, feats[3 - i]], 1)
            y = stage(y)
        return self.head(y)


def build(encoder):
    return SmallUNet() if encoder == "small" else ResNetUNet(encoder)


def seg_loss(logits, target, smooth=1.0):
    pixel = nn.functional.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + target.sum((0, 2, 3))
    dice = (2 * inter + smooth) / (denom + smooth)
    return pixel + (1 - dice).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--encoder", default="small", choices=["small", "resnet18", "resnet34"])
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build(args.encoder).to(device).train()
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t = (torch.rand(args.batch_size, 4, args.size, args.size, device=device) < 0.01).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = seg_loss(model(x), t)
        loss.backward()
        opt.step()
        return loss

    times = []
    for i in range(2 + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    med = statistics.median_high(times)
    print(f"seg-train unet-{args.encoder} {args.size}x{args.size}{' channels-last' if args.channels_last else ''} "
          f"batch {args.batch_size} on {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"parameters {params}")
    print(f"step_s {med:.4f}")
    print(f"samples_per_s {args.batch_size / med:.3f}")


if __name__ == "__main__":
    main()
