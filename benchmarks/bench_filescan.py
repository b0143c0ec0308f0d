"""Benchmark: redline's static model-file scanner against modelscan, picklescan and fickling.

Speed (default): generates large benign files, scans each with every tool, prints the best of
N wall-clock times and the ratio to redline.

Rates (``--sweep`` and/or ``--differential``): the long forms of the suite's harnesses
(tests/filescan/benign_sweep.py, tests/filescan/differential.py; see
docs/filescan-differential.md). The sweep writes every default-constructible scikit-learn
estimator fitted with default settings (pickle, joblib, skops), torch, numpy and ONNX files;
the false-positive rate is the share a tool does not call safe. The differential run loads
every candidate with the real loaders in sandboxed children; the detection rate is the share
of files whose canary payload ran that a tool did not call safe ("missed" = called safe).

    pip install -e .[bench]   # modelscan, picklescan, fickling
    python benchmarks/bench_filescan.py [--size-mb 200] [--repeat 3]
    python benchmarks/bench_filescan.py --sweep --differential [--splice-every 3]
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


def run_fickling(path: Path) -> str:
    import fickling

    result = fickling.scan_file(str(path), graceful=True)
    return "safe" if result.is_safe and not result.errors else ("unsafe" if not result.is_safe else "error")


TOOLS = {"redline": run_redline, "modelscan": run_modelscan, "picklescan": run_picklescan,
         "fickling": run_fickling}
_TOOL_MODULES = {"redline": "redline.filescan", "modelscan": "modelscan.modelscan",
                 "picklescan": "picklescan.scanner", "fickling": "fickling"}


def _verdict(fn, path: Path) -> str:
    try:
        return fn(path)
    except Exception:  # noqa: BLE001 - a peer tool crashing on a file is an error verdict
        return "error"


def rates(available: dict, sweep: bool, differential: bool, splice_every: int, fast_sweep: bool = False) -> None:
    """False-positive rate on the benign sweep, detection rate on the differential candidates."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "filescan"))
    import benign_sweep
    import differential as diff

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if sweep:
            start = time.perf_counter()
            families = benign_sweep.build(root / "sweep", fast=fast_sweep)
            files = [p for paths in families.values() for p in paths]
            print(f"benign sweep: {len(files)} files ({', '.join(f'{k} {len(v)}' for k, v in families.items())}), "
                  f"written in {time.perf_counter() - start:.0f}s")
            redline_bad = benign_sweep.flagged(files)  # scanned together, as scan-files does
            for name, fn in available.items():
                if name == "redline":
                    bad = len(redline_bad)
                else:
                    bad = sum(_verdict(fn, p) != "safe" for p in files)
                print(f"  {name:<11} false positives {bad:4d} / {len(files)} ({100 * bad / max(1, len(files)):.1f}%)")
            for line in redline_bad[:20]:
                print(f"    redline: {line}")
        if differential:
            candidates = diff.payload_shapes() + diff.number_prefixes()
            if "torch" in diff.available_loaders():
                candidates += [diff.Candidate("torch-data-pkl", diff.torch_spliced, loaders=("torch",), suffix=".pt"),
                               diff.Candidate("torch-zip64-two-directories", diff.torch_zip64_two_directories,
                                              loaders=("torch",), suffix=".pt"),
                               diff.Candidate("torch-zip64-hidden-directory", diff.torch_zip64_hidden_directory,
                                              loaders=("torch",), suffix=".pt")]
            try:
                candidates += diff.spliced_models(diff.small_models(), every=splice_every)
            except ImportError:
                print("scikit-learn not installed: splices skipped", file=sys.stderr)
            start = time.perf_counter()
            outcomes = diff.evaluate(candidates, root / "diff", preload=("sklearn.linear_model", "sklearn.tree"))
            live = [o for o in outcomes if any(o.fired.values())]
            paths = {id(o): root / "diff" / f"c{i:04d}" / f"model{o.candidate.suffix}" for i, o in enumerate(outcomes)}
            print(f"differential: {len(outcomes)} candidates, {len(live)} whose payload ran under a real loader "
                  f"({time.perf_counter() - start:.0f}s)")
            for name, fn in available.items():
                verdicts = [o.verdict if name == "redline" else _verdict(fn, paths[id(o)]) for o in live]
                missed = sum(v == "safe" for v in verdicts)
                print(f"  {name:<11} detected {len(live) - missed:4d} / {len(live)} "
                      f"({100 * (len(live) - missed) / max(1, len(live)):.1f}%), called safe {missed}")
            for o in live:
                if o.verdict == "safe":
                    print(f"    redline MISSED {o.candidate.name}: fired={o.fired}")


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
    parser.add_argument("--sweep", action="store_true", help="false-positive rates on the benign sweep")
    parser.add_argument("--differential", action="store_true", help="detection rates against the real loaders")
    parser.add_argument("--splice-every", type=int, default=3, help="splice a payload at every k-th opcode")
    parser.add_argument("--fast-sweep", action="store_true", help="the suite's shrunken sweep (fewer iterations)")
    args = parser.parse_args(argv)
    available = {}
    for name, fn in TOOLS.items():
        try:
            __import__(_TOOL_MODULES[name])
            available[name] = fn
        except ImportError:
            print(f"{name} not installed: skipped", file=sys.stderr)
    if args.sweep or args.differential:
        rates(available, args.sweep, args.differential, args.splice_every, args.fast_sweep)
        return 0
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
