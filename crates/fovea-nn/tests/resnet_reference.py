# Reference for tests/models.rs: torchvision's ResNet-18 with deterministic weights, and the
# pooled features of a fixed input. Run with the project's PyTorch environment:
#   ~/.cache/fovea/torch-2.13.0/bin/python crates/fovea-nn/tests/resnet_reference.py
import math
import torch
import torchvision

def fill(name, shape):
    k = math.prod(shape)
    v = torch.sin(0.01 * torch.arange(k, dtype=torch.float64) + len(name)) * 0.05
    if name.endswith("running_var"):
        v = 1.0 + v.abs() * 2.0
    if name.endswith("bias"):
        v = 0.05 + v.abs()
    return v.to(torch.float32).reshape(shape)

model = torchvision.models.resnet18()
sd = {n: (fill(n, t.shape) if t.dtype.is_floating_point else t) for n, t in model.state_dict().items()}
model.load_state_dict(sd)
model.eval()
x = torch.sin(0.001 * torch.arange(2 * 3 * 64 * 64, dtype=torch.float64)).to(torch.float32).reshape(2, 3, 64, 64)
with torch.no_grad():
    trunk = torch.nn.Sequential(*list(model.children())[:-1])
    f = trunk(x).flatten(1)
print("sum", f.sum().item())
print("first", f[0, :5].tolist())
print("last", f[1, -3:].tolist())
