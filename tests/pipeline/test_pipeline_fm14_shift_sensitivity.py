"""FM14.shift_sensitivity over HTTP: a prediction endpoint whose model never saw one region of
the input space is flagged there, its twin trained on every row passes, and the rows charged
are the rows the server answered (each test row once)."""
import json

import numpy as np
import pytest

from redline.cli import main
from redline.report.validate import validate_report

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def region_models():
    """Label x0 > 0.5, except where x2 > 0.8 (there x1 > 0.5); one tree never sees that region."""
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(1600, 4)).astype(np.float32)
    y = np.where(x[:, 2] > 0.8, x[:, 1] > 0.5, x[:, 0] > 0.5).astype(int)
    seen = x[:1000, 2] <= 0.8
    biased = DecisionTreeClassifier(max_depth=6, random_state=0).fit(x[:1000][seen], y[:1000][seen])
    full = DecisionTreeClassifier(max_depth=6, random_state=0).fit(x[:1000], y[:1000])
    return biased, full, {"x_train": x[:1000], "y_train": y[:1000], "x_test": x[1000:], "y_test": y[1000:]}


@pytest.mark.parametrize("which,expected", [("biased", "vulnerable"), ("full", "not_vulnerable")])
def test_shift_sensitivity_over_http(region_models, model_server, tmp_path, which, expected):
    biased, full, arrays = region_models
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)
    out = tmp_path / "out"
    with model_server(biased if which == "biased" else full, labels_only=True) as server:
        code = main(["scan", server.url, "--data", f"npz:{data}", "--out", str(out), "--select",
                     "FM14.shift_sensitivity", "--format", "json", "--fail-on", "never", "--no-progress"])
        rows = server.rows
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    (finding,) = report["findings"]
    assert finding["status"] == expected, finding["summary"]
    if expected == "vulnerable":
        # the band of the third feature above its 80% quantile: the region the model never saw
        assert finding["metrics"]["shifts"][0]["name"] == "band:feature 2:high"
        assert finding["severity"] in ("Moderate", "Important")
    # the 600 test rows once each, plus the endpoint's first probe: every row charged was answered
    assert finding["queries"] == 600
    assert finding["queries"] + finding["evaluation_queries"] == rows
