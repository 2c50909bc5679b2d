#!/usr/bin/env python3
"""PyTorch reference for `fovea bench train` / `fovea bench infer`: the same measurement.

Training: torchvision ResNet-18 (4 outputs, BatchNorm in training mode), sigmoid focal loss
(torchvision.ops.sigmoid_focal_loss, gamma 2, no alpha) times per-class weights of mean 1
(Fovea's default `class_weighting = "multiply"`; the weights fovea-nn's bench uses, from
positive counts [100, 100, 100, 20] -> [0.5, 0.5, 0.5, 2.5]), torch.optim.Adam(lr 1e-3,
weight_decay 1e-5), one fixed random batch [B, 3, S, S] with random multi-hot targets;
a step = zero_grad + forward + loss + backward + update. 3 warm-up steps, then the median
of --steps timed steps.

Inference: the same model in eval mode under torch.inference_mode(), batch 64 (or
--infer-batch-size), logits through a sigmoid, as `fovea bench infer`.

Prints `train_samples_per_s X` and `infer_samples_per_s Y` (the parts asked for by --what).
"""

import argparse
import statistics
import time

import torch
import torchvision
from torchvision.ops import sigmoid_focal_loss

# fovea-nn's bench: Loss::new(default settings, positives [100, 100, 100, 20]):
# inverse frequencies normalised to mean 1.
POSITIVES = [100, 100, 100, 20]


def class_weights(device):
    inv = [1.0 / p for p in POSITIVES]
    mean = sum(inv) / len(inv)
    return torch.tensor([w / mean for w in inv], dtype=torch.float32, device=device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, steps, warmup, device):
    times = []
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    # Fovea takes v[len // 2] of the sorted times; statistics.median_high is the same.
    return statistics.median_high(times)


def make_model(device, channels_last):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_input(batch, size, device, channels_last):
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def bench_train(a, device):
    model = make_model(device, a.channels_last)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    w = class_weights(device)
    x = make_input(a.batch_size, a.size, device, a.channels_last)
    y = (torch.rand(a.batch_size, 4, device=device) > 0.7).float()

    def step():
        opt.zero_grad()
        logits = model(x)
        loss = (sigmoid_focal_loss(logits, y, alpha=-1, gamma=2.0, reduction="none") * w).mean()
        loss.backward()
        opt.step()

    m = timed(step, a.steps, a.warmup, device)
    print(
        f"train resnet18 {a.size}x{a.size} batch {a.batch_size} on {device}, "
        f"{torch.get_num_threads()} threads, channels_last={a.channels_last}: "
        f"median step {m:.4f} s over {a.steps} steps"
    )
    print(f"train_samples_per_s {a.batch_size / m:.2f}", flush=True)


def bench_infer(a, device):
    model = make_model(device, a.channels_last)
    model.eval()
    x = make_input(a.infer_batch_size, a.size, device, a.channels_last)

    def step():
        with torch.inference_mode():
            model(x).sigmoid()

    m = timed(step, a.steps, a.warmup, device)
    print(
        f"infer resnet18 {a.size}x{a.size} batch {a.infer_batch_size} on {device}, "
        f"{torch.get_num_threads()} threads, channels_last={a.channels_last}: "
        f"median step {m:.4f} s over {a.steps} steps"
    )
    print(f"infer_samples_per_s {a.infer_batch_size / m:.2f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=128, help="input side in pixels")
    p.add_argument("--batch-size", type=int, default=32, help="training batch")
    p.add_argument("--infer-batch-size", type=int, default=64, help="inference batch")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    p.add_argument("--channels-last", action="store_true", help="NHWC model and input")
    p.add_argument("--what", default="train,infer", help="train, infer or train,infer")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to PyTorch")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}", flush=True)
    parts = [s.strip() for s in a.what.split(",") if s.strip()]
    for part in parts:
        if part == "train":
            bench_train(a, device)
        elif part == "infer":
            bench_infer(a, device)
        else:
            raise SystemExit(f"--what: unknown part '{part}'")


if __name__ == "__main__":
    main()
