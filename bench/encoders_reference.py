#!/usr/bin/env python3
"""PyTorch reference for `fovea bench encoders`: the same measurement with torchvision.

For each encoder, in training mode (BatchNorm batch statistics, Swin-T's stochastic depth
on): one fixed random batch [B, 3, S, S]; a step = zero_grad + forward to the pooled
features (ResNet-18: the trunk without avgpool/fc, then the mean over the feature map;
Swin-T: features + norm, then the mean over the tokens) + sum + backward. No optimiser
update. 2 warm-up steps, then the median of --steps timed steps.

Prints `resnet18_samples_per_s X` and `swin_t_samples_per_s Y`.
"""

import argparse
import statistics
import time

import torch
import torchvision


def resnet18_trunk():
    m = torchvision.models.resnet18()
    return torch.nn.Sequential(*list(m.children())[:-2]), lambda fm: fm.mean((2, 3))


def swin_t_trunk():
    m = torchvision.models.swin_t()
    return torch.nn.Sequential(m.features, m.norm), lambda fm: fm.mean((1, 2))


def measure(make, size, batch, steps, device):
    torch.manual_seed(0)
    net, pool = make()
    net = net.to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    times = []
    for i in range(2 + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        net.zero_grad()
        pool(net(x)).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    for name, make in [("resnet18", resnet18_trunk), ("swin_t", swin_t_trunk)]:
        sps = measure(make, a.size, a.batch_size, a.steps, device)
        print(f"encoder {name} {a.size}x{a.size} batch {a.batch_size}, {torch.get_num_threads()} threads")
        print(f"{name}_samples_per_s {sps:.3f}")


if __name__ == "__main__":
    main()
