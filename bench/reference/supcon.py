"""Reference value of the supervised contrastive loss (Khosla et al., 2020, L_out) for the
unit test in crates/fovea-nn/src/context/contrastive.rs. NumPy only; written out from the
paper's definition, independently of the Rust code:

  L = mean over anchors i with at least one positive of
      -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/t) / sum_{a != i} exp(z_i.z_a/t) )

with z L2-normalised and P(i) the other samples with the same label vector.
Run: python bench/reference/supcon.py
"""
import numpy as np

raw = np.array([
    [0.3, -1.2, 0.5],
    [0.1, 0.4, -0.7],
    [1.5, 0.2, 0.2],
    [-0.6, -0.3, 0.9],
    [0.2, 0.8, 0.1],
    [-1.0, 0.5, 0.4],
], dtype=np.float64)
labels = np.array([
    [1, 0, 0, 0],
    [0, 0, 1, 0],
    [1, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 1, 0],
    [0, 1, 0, 1],
])
t = 0.5
z = raw / np.linalg.norm(raw, axis=1, keepdims=True)
n = len(z)
losses = []
for i in range(n):
    pos = [p for p in range(n) if p != i and (labels[p] == labels[i]).all()]
    if not pos:
        continue
    denom = sum(np.exp(z[i] @ z[a] / t) for a in range(n) if a != i)
    losses.append(-np.mean([np.log(np.exp(z[i] @ z[p] / t) / denom) for p in pos]))
print(f"{np.mean(losses):.10f}")
