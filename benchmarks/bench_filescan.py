"""Benchmark: redline's static model-file scanner against modelscan (and picklescan).

Generates large benign files in a temporary folder, scans each one with every tool in the
same run, and prints the best of N wall-clock times and the ratio to redline.

    pip install modelscan picklescan   # benchmark-only dependencies
    python benchmarks/bench_filescan.py [--size-mb 200] [--repeat 3]
"""
from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path


def make_files(folder: Path, size_mb: int) -> dict[str, Path]:
    import numpy as np

    n = size_mb * (1 << 20) // 8
    array = np.random.default_rng(0).random(n)
    files = {}
    files["numpy pickle (protocol 4)"] = folder / "array_p4.pkl"
    with open(files["numpy pickle (protocol 4)"], "wb") as handle:
        pickle.dump(array, handle, protocol=4)
    files["numpy pickle (protocol 2)"] = folder / "array_p2.pkl"
    with open(files["numpy pickle (protocol 2)"], "wb") as handle:
        pickle.dump(array, handle, protocol=2)
    try:
        from sklearn.datasets import load_digits
        from sklearn.ensemble import RandomForestClassifier

        X, y = load_digits(return_X_y=True)
        forest = RandomForestClassifier(n_estimators=300, random_state=0).fit(X, y)
        files["sklearn forest pickle (300 trees)"] = folder / "forest.pkl"
        with open(files["sklearn forest pickle (300 trees)"], "wb") as handle:
            pickle.dump(forest, handle, protocol=2)  # protocol 2: many small opcodes
    except ImportError:
        print("scikit-learn not installed: forest skipped", file=sys.stderr)
    try:
        import torch
    except ImportError:
        print("torch not installed: PyTorch files skipped", file=sys.stderr)
        return files
    big = torch.from_numpy(array.astype("float32"))
    files["torch checkpoint (1 tensor)"] = folder / "big.pt"
    torch.save({"weight": big, "epoch": 3}, files["torch checkpoint (1 tensor)"])
    many = {f"layer{i}.weight": torch.randn(256, 256) for i in range(max(1, size_mb * 4))}
    files["torch checkpoint (many tensors)"] = folder / "many.pt"
    torch.save(many, files["torch checkpoint (many tensors)"])
    files["torch legacy checkpoint"] = folder / "legacy.pt"
    torch.save({"weight": big}, files["torch legacy checkpoint"], _use_new_zipfile_serialization=False)
    return files


def run_redline(path: Path) -> str:
    from redline.filescan import scan_path

    return scan_path(path).verdict


def run_modelscan(path: Path) -> str:
    from modelscan.modelscan import ModelScan

    result = ModelScan().scan(str(path))
    return "unsafe" if result["issues"] else ("error" if result["errors"] else "safe")


def run_picklescan(path: Path) -> str:
    from picklescan.scanner import scan_file_path

    result = scan_file_path(str(path))
    return "unsafe" if result.issues_count else ("error" if result.scan_err else "safe")


TOOLS = {"redline": run_redline, "modelscan": run_modelscan, "picklescan": run_picklescan}


def best_time(fn, path: Path, repeat: int) -> tuple[float, str]:
    best, verdict = float("inf"), "?"
    for _ in range(repeat):
        start = time.perf_counter()
        verdict = fn(path)
        best = min(best, time.perf_counter() - start)
    return best, verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="size of the large arrays (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and file; the best is kept")
    args = parser.parse_args(argv)
    available = {}
    for name, fn in TOOLS.items():
        try:
            __import__({"redline": "redline.filescan", "modelscan": "modelscan.modelscan",
                        "picklescan": "picklescan.scanner"}[name])
            available[name] = fn
        except ImportError:
            print(f"{name} not installed: skipped", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.size_mb)
        header = f"{'file':<34} {'MB':>6} " + " ".join(f"{t:>24}" for t in available)
        print(header)
        for label, path in files.items():
            size = path.stat().st_size / (1 << 20)
            times = {name: best_time(fn, path, args.repeat) for name, fn in available.items()}
            base = times["redline"][0]
            cells = []
            for name, (seconds, verdict) in times.items():
                ratio = "" if name == "redline" else f" x{seconds / base:.1f}"
                cells.append(f"{seconds * 1000:9.1f}ms {verdict:<6}{ratio:>7}")
            print(f"{label:<34} {size:6.0f} " + " ".join(f"{c:>24}" for c in cells))
    print("ratio = tool time / redline time (above 1: redline is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
