"""A range the target config declares for a feature (constraints.ranges) that the data's rows
mostly lie outside is a one-line data error, not a run whose attacks clip every row into a
range the data never takes."""
from __future__ import annotations

import numpy as np
import pytest

from redline.checks.evasion.fm01_pgd import ProjectedGradientDescent as PGD
from redline.data.base import Dataset
from redline.errors import DataError
from redline.findings import Status
from redline.targets import load_target

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[:300], y[:300])
    data = Dataset("cancer", x[:300], y[:300], x[300:], y[300:], None, None,
                   feature_names=[f"f{i}" for i in range(x.shape[1])], spec="test:cancer")
    return model, data


def _config(tmp_path, text):
    path = tmp_path / "target.yaml"
    path.write_text(text)
    return str(path)


def test_rows_outside_a_declared_range_are_refused(cancer, tmp_path):
    model, data = cancer
    # f2 (mean perimeter) takes 40 to 190; the config says [0, 1].
    target = load_target(model, data=data, config=_config(tmp_path, "constraints: {ranges: {f2: [0, 1]}}"))
    finding = PGD()(target, data, seed=0, budget=200)
    assert finding.status is Status.ERROR, finding.summary
    assert "f2 outside [0, 1]" in finding.reason and "constraints.ranges" in finding.reason


def test_a_range_the_rows_fit_or_a_tail_beyond_it_is_accepted(cancer, tmp_path):
    model, data = cancer
    high = float(np.quantile(data.x_train[:, 2], 0.9))  # a tenth of the rows beyond it: a tail, not a contradiction
    target = load_target(model, data=data, config=_config(tmp_path, f"constraints: {{ranges: {{f2: [0, {high}]}}}}"))
    finding = PGD()(target, data, seed=0, budget=200)
    assert finding.status is not Status.ERROR, finding.reason


def test_the_check_helper_raises_a_data_error(cancer, tmp_path):
    from redline.checks.base import _require_rows_within_ranges

    model, data = cancer
    target = load_target(model, data=data, config=_config(tmp_path, "constraints: {ranges: {f2: [0, 1]}}"))
    with pytest.raises(DataError, match="of the train rows have f2 outside"):
        _require_rows_within_ranges(data, target)
