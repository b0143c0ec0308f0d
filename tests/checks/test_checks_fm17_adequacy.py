"""FM17.test_adequacy: the numbers behind it (interval widths, rows needed, class mix,
prioritisation, neuron coverage), its controls on digits, and a run over HTTP."""
from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from redline.checks import CheckContext
from redline.checks.robustness import adequacy as adq
from redline.checks.robustness.conditions import parse_operating_conditions
from redline.checks.robustness.fm17_test_adequacy import TestAdequacy
from redline.data.base import Dataset
from redline.findings import Status

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fair-survey.system.yaml"


# -- numbers --------------------------------------------------------------------------------------

def test_rows_for_precision_is_the_fewest_rows_whose_exact_interval_fits():
    for accuracy, points in ((0.9, 1), (0.9, 2), (0.97, 2), (0.5, 5)):
        d = points / 100
        n = adq.rows_for_precision(accuracy, d)
        assert adq.interval_half_width(round(accuracy * n), n) <= d
        assert adq.interval_half_width(round(accuracy * (n - 1)), n - 1) > d
        # Exact intervals are a little wider than the normal approximation z^2 p(1-p)/d^2.
        assert n >= 1.959964**2 * accuracy * (1 - accuracy) / d**2 - 1
    # At 90% the lower side is the longer one: 3,788 rows for +-1 point (normal approximation 3,458).
    assert 3700 < adq.rows_for_precision(0.9, 0.01) < 3900
    assert 950 < adq.rows_for_precision(0.9, 0.02) < 1100
    assert adq.interval_half_width(0, 0) == 1.0


def test_thirty_rows_is_about_what_a_fifteen_point_drop_needs():
    # The default min_rows: a subgroup at 75% against 90% overall, one-sided alpha 5%, power 80%.
    assert adq.rows_to_detect_drop(0.9, 0.15) == 33
    assert adq.rows_to_detect_drop(0.9, 0.05) > 200  # small drops need far more rows


def test_class_mix_against_priors():
    p, distance = adq.mix_against_priors(np.array([70, 30]), np.array([0.7, 0.3]))
    assert p > 0.99 and distance == pytest.approx(0.0)
    p, distance = adq.mix_against_priors(np.array([50, 50, 0, 0]), np.full(4, 0.25))
    assert p < 1e-10 and distance == pytest.approx(0.5)
    p, _ = adq.mix_against_priors(np.array([10, 10, 1]), np.array([0.5, 0.5, 0.0]))
    assert p == 0.0  # a class the priors say never occurs


def test_apfd_and_errors_in_first():
    wrong = np.array([True, False, True, False])
    assert adq.apfd(np.arange(4), wrong) == pytest.approx(1 - (1 + 3) / 8 + 1 / 8)
    assert adq.apfd(np.array([0, 2, 1, 3]), wrong) > adq.apfd(np.array([1, 3, 0, 2]), wrong)
    assert adq.apfd(np.arange(4), np.zeros(4, bool)) is None
    assert adq.errors_in_first(np.array([2, 0, 1, 3]), wrong, 2) == 2


def test_uncertainty_and_surprise_scores():
    p = np.array([[0.5, 0.5], [0.99, 0.01], [0.7, 0.3]])
    assert list(np.argsort(-adq.margin_scores(p))) == [0, 2, 1]
    assert list(np.argsort(-adq.entropy_scores(p))) == [0, 2, 1]
    reference = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    labels = np.array([0, 0, 1, 1])
    test = np.array([[0.05, 0.0], [2.5, 2.5], [4.0, 4.0]])
    dsa = adq.distance_surprise(test, np.array([0, 0, 1]), reference, labels)
    assert dsa[0] < dsa[2] < dsa[1]  # a row half-way between the classes surprises most


def test_neuron_coverage_greedy_order_and_saturation():
    active = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], bool)
    order = adq.greedy_coverage_order(active, np.random.default_rng(0))
    assert list(order[:2]) == [1, 2]
    curve = adq.coverage_curve(active, order)
    assert curve[1] == 1.0 and adq.rows_to_saturate(curve, 0.99) == 2 and adq.rows_to_saturate(curve, 0.7) == 1


# -- controls on digits ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    """A small torch MLP on builtin:digits (white-box, so neuron coverage and activations)."""
    import torch

    from redline.data import load_data
    from redline.targets import load_target

    data = load_data("builtin:digits")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    x, y = torch.from_numpy(data.x_train.astype(np.float32)), torch.from_numpy(data.y_train.astype(np.int64))
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return load_target(net.eval(), data=data), data


def _only(data, keep, name):
    return Dataset(name, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test[keep], y_test=data.y_test[keep],
                   modality=data.modality, class_names=data.class_names, spec=f"test:{name}")


def test_negative_control_a_stratified_test_set_is_adequate(digits):
    target, data = digits
    f = TestAdequacy()(target, data, seed=0)
    assert f.status is Status.NOT_VULNERABLE, f.summary
    m = f.metrics
    assert m["conditions_total"] == m["conditions_covered"] == 13  # 10 classes, precision, class mix, held out
    assert min(m["class_counts"].values()) >= 50 and m["accuracy_half_width"] < 0.05
    assert m["class_priors_from"] == "training labels" and m["class_mix_p_value"] > 0.5
    assert m["representation"].startswith("penultimate activations")
    # Neuron coverage saturates within a few rows, while uncertainty still ranks the errors first.
    assert m["neuron_coverage_saturation_rows"] <= 0.05 * m["test_rows"]
    ranked = m["prioritisation"]
    assert ranked["margin"]["errors_in_first"] >= 3 * max(1, ranked["neuron_coverage"]["errors_in_first"])
    assert ranked["margin"]["apfd"] > ranked["neuron_coverage"]["apfd"] + 0.2
    assert ranked["surprise_adequacy"]["apfd"] > ranked["random"]["apfd"]
    assert f.queries == 0 and f.evaluation_queries == 2 * len(data.x_test) + len(data.x_train)


def test_positive_control_two_classes_only(digits):
    target, data = digits
    f = TestAdequacy()(target, _only(data, np.isin(data.y_test, [0, 1]), "digits-01"), seed=0)
    assert f.status is Status.VULNERABLE
    untested = {e["condition"]: e for e in f.metrics["untested"]}
    assert {f"class {c}" for c in range(2, 10)} <= set(untested)
    assert untested["class 5"]["reason"] == "0 test rows, fewer than 30"
    assert "class mix" in untested and "Not supported: class 2" in f.summary


def test_a_small_test_set_cannot_support_a_precise_claim(digits):
    target, data = digits
    rng = np.random.default_rng(0)
    f = TestAdequacy(min_rows=3, tolerance=0.05)(target, _only(data, rng.permutation(len(data.y_test))[:60], "tiny"))
    assert f.status is Status.VULNERABLE
    (entry,) = [e for e in f.metrics["untested"] if e["kind"] == "precision"]
    needed = adq.rows_for_precision(f.metrics["accuracy"], 0.05)
    assert f"needs {needed:,} rows" in entry["reason"] and f.metrics["accuracy_half_width"] > 0.05


def test_declared_populations_and_priors_come_from_the_conditions(digits):
    target, data = digits
    section = {"class_priors": {str(c): 0.1 for c in range(10)},
               "populations": [{"name": "dark top-left", "where": {0: {"range": [0.5, 1]}}}]}
    ctx = CheckContext(operating_conditions=parse_operating_conditions(section))
    f = TestAdequacy()(target, data, seed=0, ctx=ctx)
    assert f.metrics["class_priors_from"] == "declared class priors"
    assert [e["condition"] for e in f.metrics["untested"]] == ["dark top-left"]  # pixel 0 is always blank
    assert f.metrics["population_counts"] == {"dark top-left": 0}


def test_labels_only_and_unlabelled(digits):
    from redline_testkit import ArrayTarget

    _, data = digits
    rng = np.random.default_rng(0)
    labels_only = ArrayTarget(rng.normal(size=(64, 10)), np.zeros(10), outputs="labels")
    flat = Dataset("flat", x_test=data.x_test.reshape(len(data.x_test), -1), y_test=data.y_test, spec="test:flat")
    f = TestAdequacy()(labels_only, flat)
    # A random model (accuracy near 10%) on an adequate test set: adequacy is about the rows, not the model.
    assert f.status is Status.NOT_VULNERABLE and f.metrics["accuracy"] < 0.3
    assert "prioritisation" not in f.metrics and "labels only" in f.evidence["prioritisation"]
    unlabelled = Dataset("u", x_test=flat.x_test, spec="test:u")
    assert TestAdequacy()(labels_only, unlabelled).status is Status.NOT_APPLICABLE


# -- over HTTP ------------------------------------------------------------------------------------

class _Server:
    """A prediction endpoint on 127.0.0.1 serving a scikit-learn model; counts answered rows."""

    def __init__(self, model):
        self.rows = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                x = np.asarray(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"], np.float32)
                server.rows += len(x)
                body = json.dumps({"probabilities": model.predict_proba(x).tolist()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_both_checks_run_against_an_http_endpoint_and_charge_what_it_answered(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from redline.cli import main
    from redline.data import load_data

    data = load_data("builtin:fair")
    model = LogisticRegression(max_iter=500).fit(data.x_train, data.y_train)
    npz = tmp_path / "fair.npz"
    np.savez(npz, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    # An npz has no feature names: the same conditions by column index (age is 1, yrs_married 2, children 3).
    text = EXAMPLE.read_text()
    for name, index in (("age", 1), ("yrs_married", 2), ("children", 3), ("religious", 4)):
        text = text.replace(f"feature: {name}", f"feature: {index}").replace(f"{{{name}:", f"{{{index}:")
        text = text.replace(f", {name}:", f", {index}:")
    context = tmp_path / "system.yaml"
    context.write_text(text.replace("class_priors: {no_affair: 0.68, affair: 0.32}", "class_priors: {0: 0.68, 1: 0.32}"))
    out = tmp_path / "out"
    with _Server(model) as server:
        code = main(["scan", server.url, "--data", f"npz:{npz}", "--context", str(context), "--select", "FM17",
                     "--set", "FM17.operating_conditions.n_inputs=50", "--out", str(out), "--format", "json",
                     "--no-progress", "--fail-on", "never"])
        rows = server.rows
    assert code == 0
    findings = {f["check"]: f for f in json.loads((out / "report.json").read_text())["findings"]}
    coverage, adequacy = findings["FM17.operating_conditions"], findings["FM17.test_adequacy"]
    assert coverage["status"] == "not_vulnerable", coverage["summary"]  # 50 rows per sensor or drift: enough
    assert adequacy["status"] == "not_vulnerable", adequacy["summary"]
    assert adequacy["metrics"]["class_priors_from"] == "declared class priors"
    assert coverage["queries"] == 50 * 3
    charged = sum(f["queries"] + f["evaluation_queries"] for f in findings.values())
    assert charged == rows and not math.isnan(adequacy["metrics"]["accuracy"])
