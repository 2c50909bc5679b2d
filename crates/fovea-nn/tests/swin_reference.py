# Reference for tests/swin.rs: torchvision's swin_t with deterministic pseudo-random
# weights (a sine hash, computed in float64 by the same libtorch on both sides), and the
# pooled features and last-stage tokens of fixed inputs: 224x224, and 96x160 (which pads
# windows to 7x7 and skips shifts where a window covers the map). Run with the project's
# PyTorch environment:
#   ~/.cache/fovea/torch-2.13.0/bin/python crates/fovea-nn/tests/swin_reference.py
import math
import torch
import torchvision

def noise(n, salt):
    t = torch.sin(0.37 * torch.arange(n, dtype=torch.float64) + 1.7 * salt) * 43758.5453
    return t - torch.floor(t) - 0.5  # uniform-looking in [-0.5, 0.5)

def fill(name, shape):
    v = noise(math.prod(shape), len(name))
    if "norm" in name or name == "features.0.2.weight" or name == "features.0.2.bias":
        v = (1.0 + 0.2 * v) if name.endswith("weight") else 0.1 * v
    elif name.endswith("relative_position_bias_table"):
        v = 2.0 * v
    elif name.endswith("bias"):
        v = 0.1 * v
    else:
        fan_in = math.prod(shape[1:])
        v = v * (2.0 * math.sqrt(3.0 / fan_in))
    return v.to(torch.float32).reshape(shape)

model = torchvision.models.swin_t()
sd = {n: (fill(n, t.shape) if t.dtype.is_floating_point else t) for n, t in model.state_dict().items()}
model.load_state_dict(sd)
model.eval()
for (h, w) in [(224, 224), (96, 160)]:
    x = (noise(2 * 3 * h * w, 3.0) * 4.0).to(torch.float32).reshape(2, 3, h, w)
    with torch.no_grad():
        fm = model.norm(model.features(x))          # [B, h/32, w/32, 768]
        pooled = fm.permute(0, 3, 1, 2).mean((2, 3))
    print(f"{h}x{w} tokens {list(fm.shape)}")
    print("  pooled sum", pooled.sum().item(), "abs", pooled.abs().sum().item())
    print("  pooled first", pooled[0, :4].tolist())
    print("  pooled last", pooled[1, -3:].tolist())
    print("  token[1, -1, -1, :3]", fm[1, -1, -1, :3].tolist())
    print("  token[0, 0, 0, :3]", fm[0, 0, 0, :3].tolist())
