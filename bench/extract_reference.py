#!/usr/bin/env python3
"""Plain Python reference for Fovea's grid patch extraction (PIL + numpy only).

What a straightforward script would do, single process, with Fovea's default settings:
for each image of a manifest dataset (CONTRACTS 1), in id order,
  - decode the photograph (RGB) and its four masks (MA, HE, EX, SE; empty cell = all-zero
    mask, any nonzero pixel = lesion);
  - compute Fovea's field of view (crates/fovea-data/src/fov.rs): mean red over
    BLOCK x BLOCK cells (partial cells at the right/bottom edge: mean over the pixels
    present), cells with mean > RED_THRESHOLD are bright, the surround is the set of dark
    cells 4-connected to the border of the cell grid, FOV = not surround, expanded back to
    pixels;
  - cut grid patches (top-left x = 0, S, 2S, ... while x + P <= W, likewise y, row-major);
  - per patch: lesion pixel counts, labels (count >= MIN_LESION_PX), fov_frac
    (FOV pixels / P^2) and black (fov_frac < FOV_THRESHOLD and no lesion pixel);
  - keep every patch array in memory and stack them into one array at the end.

Writes an index CSV with Fovea's index.csv columns (CONTRACTS 2; without `split`, which
Fovea draws with its own seeded generator) and prints its wall time and peak RSS.

Usage: extract_reference.py --dataset DIR --out INDEX.csv [--patch-size 128 --stride 128]
       [--save-npy PATCHES.npy] [--pixels-from STORE]

--pixels-from STORE is a check, not a benchmark: the photograph's pixels under Fovea's grid
patches are taken from STORE/patches.npy (Fovea's JPEG decoder) instead of PIL's, so the
field of view is computed on the same pixels as Fovea's and fov_frac must agree to the
4 decimals of index.csv. PIL (libjpeg-turbo) and Fovea's decoder (zune-jpeg) round some
pixels differently (up to a few grey levels), which moves a few 4x4 cells across the red
threshold and so fov_frac by a few 16-pixel cells (0.001 each at P = 128). Pixels outside
every grid patch (the right and bottom strips) stay PIL's. Patches are not kept then.
"""

import argparse
import csv
import os
import resource
import sys
import time

import numpy as np
from PIL import Image

LESIONS = ("ma", "he", "ex", "se")
RED_THRESHOLD = 20.0  # FovSettings::default().red_threshold
BLOCK = 4  # FovSettings::default().block
FOV_THRESHOLD = 0.5  # BlackSettings::default().fov_threshold
MIN_LESION_PX = 1  # LabelSettings::default().min_lesion_px

# Decoded images are large; a 4288x2848 photograph is well under this.
Image.MAX_IMAGE_PIXELS = 400_000_000


def read_manifest(root):
    """Records (id, image path, [mask path or None] * 4), sorted by id (string order)."""
    path = os.path.join(root, "manifest.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    records = []
    for r in rows:
        masks = []
        for l in LESIONS:
            cell = (r.get(l) or "").strip()
            masks.append(os.path.join(root, cell) if cell else None)
        records.append((r["id"].strip(), os.path.join(root, r["image"].strip()), masks))
    records.sort(key=lambda rec: rec[0])
    return records


def read_rgb(path):
    """The photograph as an (H, W, 3) uint8 array; no EXIF rotation (masks follow the
    stored pixels)."""
    with Image.open(path) as im:
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im)


def read_mask(path):
    """A boolean (H, W) lesion mask: any nonzero pixel is lesion; colour masks use their
    colour channels only (never alpha); palette TIFFs use the index, palette PNGs the
    colour (as Fovea's reader does)."""
    with Image.open(path) as im:
        mode = im.mode
        if mode == "P":
            if im.format == "TIFF":
                return np.asarray(im) != 0
            im = im.convert("RGBA")
            mode = "RGBA"
        a = np.asarray(im)
        if mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr"):
            return (a[..., :3] != 0).any(axis=-1)
        if mode == "LA" or mode == "PA":
            return a[..., 0] != 0
        return a != 0


def field_of_view(rgb, block=BLOCK, red_threshold=RED_THRESHOLD):
    """Fovea's FOV mask (uint8 0/1, shape (H, W)), computed on the cell grid."""
    h, w = rgb.shape[:2]
    ch, cw = -(-h // block), -(-w // block)
    red = rgb[..., 0]
    if h % block or w % block:  # partial cells at the right / bottom: pad with zeros
        padded = np.zeros((ch * block, cw * block), dtype=np.uint8)
        padded[:h, :w] = red
        red = padded
    # Sum of red per cell (strided slices: much faster than reshape + sum over a view).
    cols = np.zeros((ch * block, cw), dtype=np.uint32)
    for k in range(block):
        cols += red[:, k::block]
    sums = np.zeros((ch, cw), dtype=np.uint32)
    for k in range(block):
        sums += cols[k::block]
    # Pixels present per cell (fewer in partial cells), for the mean.
    counts = np.outer(
        np.minimum(block, h - np.arange(ch) * block), np.minimum(block, w - np.arange(cw) * block)
    )
    # Mean > threshold, written as in Fovea (sum > threshold * count, in float32).
    bright = sums.astype(np.float32) > np.float32(red_threshold) * counts.astype(np.float32)
    dark = ~bright
    surround = border_connected(dark)
    fov_cells = (~surround).astype(np.uint8)
    fov = np.repeat(np.repeat(fov_cells, block, axis=0), block, axis=1)[:h, :w]
    return fov


def _sweep_rows(dark, reached):
    """Every dark cell in the same horizontal run of dark cells as a reached cell becomes
    reached (one pass, vectorised with run ids)."""
    starts = dark.copy()
    starts[:, 1:] &= ~dark[:, :-1]
    run_id = np.cumsum(starts.ravel())  # a run never spans two rows: each row restarts
    hit = np.zeros(run_id[-1] + 1, dtype=bool)
    hit[run_id[reached.ravel()]] = True
    return dark & hit[run_id].reshape(dark.shape)


def border_connected(dark):
    """Dark cells 4-connected to the border of the grid (a flood fill), by alternating
    row and column sweeps over runs of dark cells until nothing changes."""
    reached = np.zeros_like(dark)
    reached[0, :] = dark[0, :]
    reached[-1, :] = dark[-1, :]
    reached[:, 0] |= dark[:, 0]
    reached[:, -1] |= dark[:, -1]
    dark_t = np.ascontiguousarray(dark.T)
    while True:
        before = int(reached.sum())
        reached = _sweep_rows(dark, reached)
        reached = np.ascontiguousarray(
            _sweep_rows(dark_t, np.ascontiguousarray(reached.T)).T
        )
        if int(reached.sum()) == before:
            return reached


def load_fovea_pixels(store):
    """A function (image_id, PIL pixels) -> pixels with Fovea's grid patches pasted in."""
    data = np.load(os.path.join(store, "patches.npy"), mmap_mode="r")
    where = {}
    with open(os.path.join(store, "index.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if r.get("kind", "grid") == "grid":
                where.setdefault(r["image_id"], []).append(
                    (int(r["patch"]), int(r["x"]), int(r["y"]), int(r["size"]))
                )

    def paste(image_id, rgb):
        rgb = rgb.copy()
        for k, x, y, size in where.get(image_id, []):
            rgb[y : y + size, x : x + size] = data[k]
        return rgb

    return paste


def axis_positions(length, p, s):
    if length < p:
        return []
    return list(range(0, length - p + 1, s))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="manifest dataset folder")
    ap.add_argument("--out", required=True, help="index CSV to write")
    ap.add_argument("--patch-size", type=int, default=128)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--save-npy", help="also save the stacked patches (not timed)")
    ap.add_argument("--pixels-from", metavar="STORE", help="check mode, see above")
    a = ap.parse_args()
    p, s = a.patch_size, a.stride
    hold = True
    fovea_pixels = None
    if a.pixels_from:
        fovea_pixels = load_fovea_pixels(a.pixels_from)
        hold = False

    t0 = time.perf_counter()
    decode_s = 0.0
    records = read_manifest(a.dataset)
    patches = []  # every patch, as a naive script keeps them
    rows = []
    for image_id, image_path, mask_paths in records:
        td = time.perf_counter()
        rgb = read_rgb(image_path)
        h, w = rgb.shape[:2]
        masks = []
        for mp in mask_paths:
            if mp is None:
                masks.append(np.zeros((h, w), dtype=bool))
            else:
                m = read_mask(mp)
                if m.shape != (h, w):
                    sys.exit(f"{mp}: mask is {m.shape[1]}x{m.shape[0]}, photograph {image_path} is {w}x{h}")
                masks.append(m)
        decode_s += time.perf_counter() - td
        if fovea_pixels is not None:
            rgb = fovea_pixels(image_id, rgb)

        fov = field_of_view(rgb)
        for y in axis_positions(h, p, s):
            for x in axis_positions(w, p, s):
                if hold:
                    patches.append(rgb[y : y + p, x : x + p].copy())
                px = [int(np.count_nonzero(m[y : y + p, x : x + p])) for m in masks]
                fov_frac = float(np.count_nonzero(fov[y : y + p, x : x + p])) / (p * p)
                black = fov_frac < FOV_THRESHOLD and not any(px)
                rows.append(
                    [len(rows), image_id, x, y, p, "grid"]
                    + [int(c >= MIN_LESION_PX) for c in px]
                    + px
                    + [f"{fov_frac:.6g}", int(black)]
                )
        del rgb, masks, fov

    stacked = np.stack(patches) if patches else np.zeros((0, p, p, 3), np.uint8)
    del patches
    with open(a.out, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(
            ["patch", "image_id", "x", "y", "size", "kind"]
            + list(LESIONS)
            + [f"{l}_px" for l in LESIONS]
            + ["fov_frac", "black"]
        )
        wr.writerows(rows)
    wall_s = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    n_black = sum(r[-1] for r in rows)
    print(
        f"reference: {len(records)} images, {len(rows)} patches ({n_black} black), "
        f"array {stacked.shape} {stacked.nbytes / 2**20:.0f} MiB"
    )
    print(f"python_decode_s {decode_s:.3f}")
    print(f"python_wall_s {wall_s:.3f}")
    print(f"python_peak_rss_mib {peak_mib:.0f}")
    if a.save_npy:
        np.save(a.save_npy, stacked)


if __name__ == "__main__":
    main()
