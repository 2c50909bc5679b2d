# Reference for tests/unet.rs: bench/seg_train_reference.py's small U-Net (the benchmark's
# PyTorch model) with deterministic weights, and its logits on a fixed input, in eval mode.
# Weights are filled by fovea's parameter names (`encoder.stage{i}.` for PyTorch's
# `encoder.{i}.`). Run with the project's PyTorch environment:
#   ~/.cache/fovea/torch-2.13.0/bin/python crates/fovea-nn/tests/unet_reference.py
import importlib.util
import math
import pathlib
import re

import torch

root = pathlib.Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("ref", root / "bench" / "seg_train_reference.py")
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


def fill(name, shape):
    k = math.prod(shape)
    v = torch.sin(0.01 * torch.arange(k, dtype=torch.float64) + len(name)) * 0.05
    if name.endswith("running_var"):
        v = 1.0 + v.abs() * 2.0
    if name.endswith("bias"):
        v = 0.05 + v.abs()
    return v.to(torch.float32).reshape(shape)


model = ref.SmallUNet()
sd = {}
for n, t in model.state_dict().items():
    fovea = re.sub(r"^encoder\.(\d+)\.", r"encoder.stage\1.", n)
    sd[n] = fill(fovea, t.shape) if t.dtype.is_floating_point else t
model.load_state_dict(sd)
model.eval()
x = torch.sin(0.001 * torch.arange(2 * 3 * 48 * 32, dtype=torch.float64)).to(torch.float32).reshape(2, 3, 48, 32)
with torch.no_grad():
    y = model(x)
print("shape", list(y.shape))
print("sum", y.sum().item())
print("first", y[0, 0, 0, :4].tolist())
print("last", y[1, 3, -1, -3:].tolist())
