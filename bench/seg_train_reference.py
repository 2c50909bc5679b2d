#!/usr/bin/env python3
"""PyTorch reference for the segmentation model's training speed (issue 16, point 9).

The same U-Net as fovea-nn's `models::unet` with the `small` encoder: five encoder stages of
two 3x3 conv (no bias) + BatchNorm + ReLU, 16-32-64-128-256 channels, 2x2 max pooling between
them; four decoder stages of nearest 2x upsampling, concatenation with the skip, two 3x3
conv + BatchNorm + ReLU (128, 64, 32, 16 channels); a 1x1 conv head to 4 logits whose bias
starts at -ln(99). Loss: fovea-nn's `seg_loss` defaults, per-pixel BCE-with-logits (mean)
plus the soft Dice per lesion over the batch (smooth 1), weights 1 and 1. Optimiser:
torch.optim.Adam(lr 1e-3). Data: one fixed random batch [B, 3, S, S] with random 0/1
targets at 1 % prevalence. A step = zero_grad + forward + loss + backward + update; 2
warm-up steps, then the median of --steps timed steps.

Prints `samples_per_s X` (B / median step time). Defaults: S = 256, B = 8, 2 threads.

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
        nn.init.constant_(self.head.bias, -math.log((1 - PRIOR) / PRIOR))
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.head:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SmallUNet().to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
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
    print(f"parameters {params}")
    print(f"step_s {med:.4f}")
    print(f"samples_per_s {args.batch_size / med:.3f}")


if __name__ == "__main__":
    main()
