"""Label-free accuracy estimation on shifted samples: how far each estimate lands from the truth.

For three built-in data sets (digits, the MNIST subset, breast cancer) a classifier is
trained on the training role; its test rows are the labelled reference sample, and the pool
rows, shifted, are the deployment sample, whose true labels are used only to score the
estimates. Shifts: none (the pool as it is), Gaussian noise at three strengths, a prior
shift (one class, or for two classes one label, made to dominate), and a subpopulation
(only the rows on one side of the first principal component of the inputs). Each method of
:mod:`redline.drift.estimate` estimates the accuracy; the absolute error per case and the
mean absolute error (MAE) per method are printed. NannyML's confidence-based performance
estimation (CBPE) runs on the same probabilities when it is installed in its own virtual
environment (``/work/venvs/nannyml``, or ``--nannyml-python``), in a subprocess, and its
MAE is printed beside ours with the ratio.

    python benchmarks/bench_fm14_estimation.py [--data digits,mnist,breast_cancer] [--nannyml-python PATH]

All three data sets take about 4 minutes on 2 shared cores (most of it the models and the
domain classifiers on MNIST); ``--data digits,breast_cancer`` takes about one.
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

METHODS = ("atc", "atc_mc", "doc", "iw")
DEFAULT_NANNYML = "/work/venvs/nannyml/bin/python"

# Run by NannyML's interpreter: CBPE fitted on the reference rows, one chunk per case.
NANNYML_SCRIPT = r"""
import json, sys, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
import nannyml as nml
out = {}
archive = np.load(sys.argv[1])
for name in json.loads(sys.argv[2]):
    ref_p, ref_y, dep_p = archive[name + "/ref_p"], archive[name + "/ref_y"], archive[name + "/dep_p"]
    k = ref_p.shape[1]
    def frame(p, y=None):
        df = pd.DataFrame({f"p{c}": p[:, c] for c in range(k)})
        df["y_pred"] = p.argmax(1)
        if y is not None:
            df["y_true"] = y
        return df
    if k == 2:
        probas = "p1"
        kind = "classification_binary"
    else:
        probas = {c: f"p{c}" for c in range(k)}
        kind = "classification_multiclass"
    ref = frame(ref_p, ref_y)
    if k > 2:
        ref["y_pred"] = ref["y_pred"].astype(int)
    est = nml.CBPE(y_pred_proba=probas, y_pred="y_pred", y_true="y_true", metrics=["accuracy"],
                   problem_type=kind, chunk_number=1)
    est.fit(ref)
    res = est.estimate(frame(dep_p)).filter(period="analysis").to_df()
    col = [c for c in res.columns if c[0] == "accuracy" and c[1] == "value"][0]
    out[name] = float(res[col].iloc[0])
print(json.dumps(out))
"""


def _builtin(name: str):
    from redline.data import load_data

    return load_data(f"builtin:{name}")


def _model(name: str, x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if name == "digits":
        return MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=0).fit(x, y)
    if name == "mnist":  # 784 pixels: a logistic regression on 50 principal components trains in seconds
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline

        return make_pipeline(PCA(n_components=50, random_state=0), LogisticRegression(C=1.0, max_iter=1000)).fit(x, y)
    return LogisticRegression(C=1.0, max_iter=2000).fit(x, y)


def shifted_samples(x: np.ndarray, y: np.ndarray, seed: int = 0):
    """(name, x, y) deployment samples made from ``x, y`` (flat rows in [0, 1])."""
    rng = np.random.default_rng(seed)
    yield "iid", x, y
    for sigma in (0.1, 0.2, 0.3):
        noisy = np.clip(x + rng.normal(0.0, sigma, size=x.shape), 0.0, 1.0)
        yield f"noise_{sigma:g}", noisy, y
    # Prior shift: the class the reference sample holds least of makes up 60% of the rows.
    classes, counts = np.unique(y, return_counts=True)
    rare = classes[np.argmin(counts)]
    own, rest = np.flatnonzero(y == rare), np.flatnonzero(y != rare)
    n = min(len(own) * 10 // 6, len(y))
    picked = np.concatenate([rng.choice(own, size=int(n * 0.6), replace=True),
                             rng.choice(rest, size=n - int(n * 0.6), replace=False)])
    yield "prior", x[picked], y[picked]
    # Subpopulation: rows on the high side of the inputs' first principal component.
    centred = x - x.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    side = centred @ direction > np.quantile(centred @ direction, 0.6)
    yield "subpopulation", x[side], y[side]


def cases(data_names):
    for name in data_names:
        data = _builtin(name)
        flat = lambda a: np.asarray(a, dtype=np.float64).reshape(len(a), -1)
        model = _model(name, flat(data.x_train), data.y_train)
        ref_x, ref_y = flat(data.x_test), data.y_test
        ref_p = model.predict_proba(ref_x)
        for shift, dep_x, dep_y in shifted_samples(flat(data.x_pool), data.y_pool):
            dep_p = model.predict_proba(dep_x)
            yield {"case": f"{name}/{shift}", "ref_p": ref_p, "ref_y": ref_y, "ref_x": ref_x,
                   "dep_p": dep_p, "dep_y": dep_y, "dep_x": dep_x,
                   "true": float(np.mean(dep_p.argmax(1) == dep_y)), "reference": float(np.mean(ref_p.argmax(1) == ref_y))}


def ours(case) -> dict[str, float | None]:
    from redline.drift.estimate import estimate_accuracy

    out = {}
    for method in METHODS:
        est = estimate_accuracy(case["ref_p"], case["ref_y"], case["dep_p"], method=method,
                                reference_inputs=case["ref_x"], deploy_inputs=case["dep_x"], n_bootstrap=50)
        out[method] = est.accuracy
    return out


def nannyml_cbpe(all_cases, python: str) -> tuple[dict[str, float] | None, str]:
    if not Path(python).exists():
        return None, f"no NannyML interpreter at {python} (install nannyml in its own venv)"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cases.npz")
        arrays = {}
        for c in all_cases:
            arrays.update({f"{c['case']}/ref_p": c["ref_p"], f"{c['case']}/ref_y": c["ref_y"],
                           f"{c['case']}/dep_p": c["dep_p"]})
        np.savez(path, **arrays)
        names = json.dumps([c["case"] for c in all_cases])
        try:
            done = subprocess.run([python, "-c", NANNYML_SCRIPT, path, names], capture_output=True, text=True, check=False,
                                  timeout=600)
        except subprocess.TimeoutExpired:
            return None, "NannyML did not finish within 600 s"
    if done.returncode != 0:
        return None, "NannyML failed: " + (done.stderr.strip().splitlines() or ["no message"])[-1]
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits,mnist,breast_cancer")
    ap.add_argument("--nannyml-python", default=DEFAULT_NANNYML)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    all_cases = list(cases([n.strip() for n in args.data.split(",") if n.strip()]))
    peer, why = nannyml_cbpe(all_cases, args.nannyml_python)
    columns = (*METHODS, *(("cbpe",) if peer else ()))
    errors: dict[str, list[float]] = {m: [] for m in columns}
    answered: dict[str, list[str]] = {m: [] for m in columns}  # the cases each method gave a number for
    collapsed: dict[str, int] = {m: 0 for m in columns}
    print(f"{'case':28s} {'ref':>6s} {'true':>6s} " + " ".join(f"{m:>8s}" for m in columns))
    for case in all_cases:
        estimates = ours(case)
        if peer:
            estimates["cbpe"] = peer.get(case["case"])
        cells = []
        for m in columns:
            value = estimates[m]
            if value is None:
                collapsed[m] += 1
                cells.append(f"{'none':>8s}")
            else:
                errors[m].append(abs(value - case["true"]))
                answered[m].append(case["case"])
                cells.append(f"{value:8.3f}")
        print(f"{case['case']:28s} {case['reference']:6.3f} {case['true']:6.3f} " + " ".join(cells))
    print()
    for m in columns:
        mae = float(np.mean(errors[m])) if errors[m] else float("nan")
        extra = f" ({collapsed[m]} cases answered None: weights collapsed)" if collapsed[m] else ""
        print(f"MAE {m:7s} {mae:.3f} over {len(errors[m])} cases{extra}")
    if peer:
        # Each method against CBPE on the cases that method answered (importance weighting
        # declines some), so no ratio compares errors over different cases.
        cbpe_by_case = dict(zip(answered["cbpe"], errors["cbpe"]))
        for m in METHODS:
            if not errors[m]:
                continue
            same = [cbpe_by_case[c] for c in answered[m] if c in cbpe_by_case]
            if len(same) == len(errors[m]) and np.mean(same) > 0:
                print(f"ratio MAE {m} / NannyML CBPE on the same {len(same)} cases: "
                      f"{np.mean(errors[m]):.3f} / {np.mean(same):.3f} = {np.mean(errors[m]) / np.mean(same):.2f}")
    else:
        print(f"NannyML CBPE not run: {why}")
    print(f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
