"""Reference values for the fovea-metrics tests, computed with scikit-learn.

The numbers hard-coded in `tests/sklearn_reference.rs` were printed by this script.
Re-run it with (venv outside the repository):

    python3 -m venv ~/.cache/fovea/ref-venv
    ~/.cache/fovea/ref-venv/bin/pip install scikit-learn numpy
    ~/.cache/fovea/ref-venv/bin/python crates/fovea-metrics/tests/reference.py

Values were produced with scikit-learn 1.9.1 and numpy 2.4.6. Scores are float32, as in
Fovea, so thresholds and ties are the same on both sides. Each float is printed with
`repr`, which round-trips exactly through Rust's `f64` parser.
"""

import warnings

import numpy as np
import sklearn
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

# sklearn warns on every ill-defined value (all-negative class, ...); the values it then
# returns are what we match, so the warnings are noise here.
warnings.simplefilter("ignore")

LESIONS = ["MA", "HE", "EX", "SE"]

# Fixture A: 10 samples. MA: mixed labels with tied scores (0.6 x4, 0.4 x3); HE: all
# negative (some scores >= 0.5, so false positives); EX: all positive (some scores < 0.5, so
# false negatives); SE: perfectly ranked (every positive above every negative).
Y_A = np.array(
    [
        [1, 0, 1, 1],
        [0, 0, 1, 0],
        [1, 0, 1, 1],
        [0, 0, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 1, 1],
        [0, 0, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 1, 1],
        [0, 0, 1, 0],
    ],
    dtype=np.uint8,
)
P_A = np.array(
    [
        [0.9, 0.1, 0.8, 0.95],
        [0.6, 0.2, 0.3, 0.10],
        [0.6, 0.7, 0.6, 0.85],
        [0.4, 0.4, 0.5, 0.40],
        [0.4, 0.55, 0.45, 0.05],
        [0.4, 0.05, 0.9, 0.70],
        [0.2, 0.3, 0.2, 0.30],
        [0.6, 0.5, 0.7, 0.20],
        [0.1, 0.6, 0.55, 0.60],
        [0.6, 0.15, 0.1, 0.45],
    ],
    dtype=np.float32,
)

# Fixture B: 24 samples drawn once with numpy (seed 7), scores rounded to one decimal, so
# ties everywhere; prevalences 7, 10, 4, 2.
Y_B = np.array(
    [
        [0, 0, 0, 0],
        [0, 0, 1, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
        [1, 1, 0, 1],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 0],
        [0, 1, 0, 1],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 0, 0],
    ],
    dtype=np.uint8,
)
P_B = np.array(
    [
        [0.0, 0.3, 0.0, 0.1],
        [0.7, 0.5, 0.6, 0.4],
        [0.6, 0.5, 0.4, 0.5],
        [0.5, 0.7, 0.5, 0.6],
        [0.1, 0.7, 0.0, 0.5],
        [0.9, 0.4, 0.3, 0.9],
        [0.3, 0.4, 0.6, 0.4],
        [0.5, 0.2, 0.1, 0.3],
        [0.4, 0.5, 0.7, 0.4],
        [0.2, 0.5, 0.7, 0.3],
        [1.0, 0.4, 0.4, 0.6],
        [0.5, 0.4, 0.6, 0.6],
        [0.3, 0.6, 0.0, 0.3],
        [0.7, 1.0, 0.2, 0.6],
        [0.5, 0.8, 0.4, 0.7],
        [0.2, 0.3, 0.1, 0.0],
        [0.1, 0.9, 0.6, 0.4],
        [0.4, 0.6, 0.4, 0.5],
        [0.2, 0.7, 0.6, 0.4],
        [0.4, 0.1, 0.0, 0.3],
        [0.8, 0.6, 0.5, 0.1],
        [0.6, 0.6, 0.6, 0.4],
        [0.6, 0.3, 0.3, 0.0],
        [0.2, 0.2, 0.1, 0.4],
    ],
    dtype=np.float32,
)


def fmt(x):
    """A float as a Rust literal (None for an undefined value)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "None"
    return repr(float(x))


def fmt_list(xs):
    return "[" + ", ".join(fmt(x) for x in xs) + "]"


def thresholded(y, p, t):
    """The `M` block of metrics.json at per-class thresholds `t` (predict p >= t)."""
    yhat = (p >= np.asarray(t, dtype=np.float64)[None, :]).astype(np.uint8)
    return {
        "micro_f1": f1_score(y, yhat, average="micro"),
        "macro_f1": f1_score(y, yhat, average="macro"),
        "hamming": hamming_loss(y, yhat),
        "subset_acc": accuracy_score(y, yhat),
        "f1": f1_score(y, yhat, average=None),
        "precision": precision_score(y, yhat, average=None),
        "recall": recall_score(y, yhat, average=None),
        "thresholds": list(t),
    }


def ranking(y, p):
    auroc, ap = [], []
    for c in range(4):
        yc, pc = y[:, c], p[:, c]
        # roc_auc_score returns nan (with a warning) when only one label value is present.
        auroc.append(roc_auc_score(yc, pc) if len(np.unique(yc)) == 2 else None)
        ap.append(average_precision_score(yc, pc))
    return auroc, ap


def tune(y, p):
    """Fovea's documented tuning rule, by brute force: the candidate (distinct scores plus
    0.5) with the best F1; ties -> closest to 0.5, then the lower one; no positives -> 0.5."""
    out = []
    for c in range(4):
        yc, pc = y[:, c], p[:, c]
        if yc.sum() == 0:
            out.append(0.5)
            continue
        cands = sorted(set(pc.astype(np.float64).tolist()) | {0.5})
        best = None
        for t in cands:
            f = f1_score(yc, (pc >= t).astype(np.uint8))
            key = (-f, abs(t - 0.5), t)
            if best is None or key < best[0]:
                best = (key, t)
        out.append(best[1])
    return out


def print_block(name, m):
    print(f"  {name}:")
    for k in ["micro_f1", "macro_f1", "hamming", "subset_acc"]:
        print(f"    {k} = {fmt(m[k])}")
    for k in ["f1", "precision", "recall", "thresholds"]:
        print(f"    {k} = {fmt_list(m[k])}")


def print_fixture(name, y, p):
    print(f"== fixture {name}")
    print_block("fixed_0.5", thresholded(y, p, [0.5] * 4))
    tuned = tune(y, p)
    print_block("tuned", thresholded(y, p, tuned))
    auroc, ap = ranking(y, p)
    print(f"  auroc = {fmt_list(auroc)}")
    print(f"  average_precision = {fmt_list(ap)}")


def print_binary():
    print("== binary ranking cases")
    cases = {
        # heavy ties, mixed labels inside tie groups
        "ties": ([0, 0, 1, 1, 0, 1, 1, 0], [0.5, 0.5, 0.5, 0.2, 0.2, 0.8, 0.8, 0.1]),
        # every score tied
        "all_tied": ([1, 0, 1, 0, 0], [0.3, 0.3, 0.3, 0.3, 0.3]),
        # no positives: AP is 0.0 (sklearn warns), AUROC undefined
        "no_pos": ([0, 0, 0, 0], [0.1, 0.4, 0.35, 0.8]),
        # only positives: AP is 1.0, AUROC undefined
        "all_pos": ([1, 1, 1], [0.2, 0.9, 0.2]),
        # the worst ranking: every positive below every negative
        "reversed": ([1, 1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5]),
        # a single positive in the middle
        "one_pos": ([0, 0, 1, 0, 0, 0], [0.9, 0.7, 0.6, 0.6, 0.2, 0.1]),
    }
    for name, (y, s) in cases.items():
        y = np.array(y, dtype=np.uint8)
        s = np.array(s, dtype=np.float32)
        auroc = roc_auc_score(y, s) if len(np.unique(y)) == 2 else None
        ap = average_precision_score(y, s)
        print(f"  {name}: auroc = {fmt(auroc)}, ap = {fmt(ap)}")


if __name__ == "__main__":
    print(f"sklearn {sklearn.__version__}, numpy {np.__version__}")
    print_fixture("A", Y_A, P_A)
    print_fixture("B", Y_B, P_B)
    print_binary()
