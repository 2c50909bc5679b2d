#!/usr/bin/env python3
"""Checks the reference index (extract_reference.py) against Fovea's STORE/index.csv.

Same number of rows, same (image_id, x, y) row for row, identical ma..se labels,
ma_px..se_px counts and black flags, fov_frac within --tol (default 1e-3). Prints a
one-line verdict (plus up to --show mismatching rows) and exits 1 on any mismatch.

Optionally (--patches REF.npy FOVEA.npy) also compares the patch pixels, which shows
whether the two JPEG decoders agree (reported, never a failure: decoders may round
differently).

Usage: compare_index.py REFERENCE.csv STORE/index.csv [--tol 1e-3] [--show 10]
"""

import argparse
import csv
import sys

import numpy as np

LABELS = ["ma", "he", "ex", "se"]
COUNTS = [f"{l}_px" for l in LABELS]
INTS = ["x", "y"] + LABELS + COUNTS + ["black"]


def load(path):
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        missing = [c for c in ["image_id", "fov_frac"] + INTS if c not in (rd.fieldnames or [])]
        if missing:
            sys.exit(f"MISMATCH: {path} lacks column(s) {', '.join(missing)}")
        rows = list(rd)
    ids = np.array([r["image_id"] for r in rows], dtype=object)
    ints = {c: np.array([int(r[c]) for r in rows], dtype=np.int64) for c in INTS}
    fov = np.array([float(r["fov_frac"]) for r in rows], dtype=np.float64)
    return ids, ints, fov


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference")
    ap.add_argument("fovea")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--show", type=int, default=10, help="mismatching rows to print")
    ap.add_argument("--patches", nargs=2, metavar=("REF_NPY", "FOVEA_NPY"))
    a = ap.parse_args()

    rid, rint, rfov = load(a.reference)
    fid, fint, ffov = load(a.fovea)
    if len(rid) != len(fid):
        print(f"MISMATCH: {len(rid)} reference rows vs {len(fid)} Fovea rows")
        return 1
    n = len(rid)

    bad = {}
    same_pos = (rid == fid) & (rint["x"] == fint["x"]) & (rint["y"] == fint["y"])
    bad["position"] = ~same_pos
    for c in LABELS + COUNTS + ["black"]:
        bad[c] = rint[c] != fint[c]
    fov_diff = np.abs(rfov - ffov)
    bad["fov_frac"] = fov_diff > a.tol
    any_bad = np.zeros(n, dtype=bool)
    for v in bad.values():
        any_bad |= v

    extra = ""
    if a.patches:
        ref = np.load(a.patches[0], mmap_mode="r")
        fov = np.load(a.patches[1], mmap_mode="r")
        if ref.shape != fov.shape:
            extra = f"; patch arrays differ in shape {ref.shape} vs {fov.shape}"
        else:
            maxd, ndiff = 0, 0
            for k in range(0, len(ref), 1024):
                d = np.abs(ref[k : k + 1024].astype(np.int16) - fov[k : k + 1024].astype(np.int16))
                maxd = max(maxd, int(d.max(initial=0)))
                ndiff += int(np.count_nonzero(d.reshape(len(d), -1).any(axis=1)))
            extra = f"; patch pixels: {ndiff}/{len(ref)} patches differ, max |diff| {maxd}"

    over = ""
    if a.tol > 1e-3:
        over = f", {int((fov_diff > 1e-3).sum())} rows above 1e-3"
    if not any_bad.any():
        print(
            f"MATCH: {n} rows, same positions, labels, *_px counts and black flags; "
            f"max |fov_frac diff| {fov_diff.max(initial=0):.2e} (tol {a.tol:g}{over}){extra}"
        )
        return 0
    parts = [f"{c} {int(v.sum())}" for c, v in bad.items() if v.any()]
    print(
        f"MISMATCH: {int(any_bad.sum())}/{n} rows differ ({', '.join(parts)}); "
        f"max |fov_frac diff| {fov_diff.max(initial=0):.2e}{extra}"
    )
    for k in np.flatnonzero(any_bad)[: a.show]:
        cols = ["x", "y"] + LABELS + COUNTS + ["black"]
        r = " ".join(f"{c}={rint[c][k]}" for c in cols)
        f = " ".join(f"{c}={fint[c][k]}" for c in cols)
        print(f"  row {k}: ref {rid[k]} {r} fov={rfov[k]:.6f}")
        print(f"  row {k}: fov {fid[k]} {f} fov={ffov[k]:.6f}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
