"""FM05 judges a stolen copy on the task's data: ``fidelity`` is the agreement on the test
rows, whatever region the attacker's own inputs (the pool) came from, and the summary says
so; ``fidelity_uniform`` (random inputs where the attacker explored) is only reported.

An attacker pool from another region than the test rows is where the two part: a tree
copied from a pool around (3.5, ...) agreed with the target on all but a few of its random
inputs there and on about 56% of the test rows around the origin (scripts in the review).
"""
import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.extraction.fm05_equation_solving import EquationSolving
from redline.checks.extraction.fm05_path_finding import PathFinding
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets.base import InputSpec

sklearn_tree = pytest.importorskip("sklearn.tree")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def shifted():
    """A wiggly depth-8 tree over [-6, 6]^4; test rows around the origin, the pool around 3.5."""
    from redline.targets.sklearn import SklearnTarget

    rng = np.random.default_rng(0)
    x_train = rng.uniform(-6, 6, size=(6000, 4))
    y_train = ((np.sin(2 * x_train[:, 0]) + np.cos(2 * x_train[:, 1]) + 0.5 * x_train[:, 2]) > 0).astype(int)
    model = sklearn_tree.DecisionTreeClassifier(max_depth=8, random_state=0).fit(x_train, y_train)
    target = SklearnTarget(model, input_spec=InputSpec(shape=(4,), lower=-6.0, upper=6.0), spec="test:tree")
    x_test = rng.normal(0.0, 1.0, size=(400, 4))
    x_pool = rng.normal(3.5, 1.0, size=(2000, 4))
    x_pool_unseen = rng.normal(3.5, 1.0, size=(400, 4))  # more of the attacker's region, never queried
    return model, target, Dataset("shifted", x_test=x_test, x_pool=x_pool), x_pool_unseen


def _copy(path):
    session = ort.InferenceSession(str(path))
    name = session.get_inputs()[0].name

    def predict(x):
        out = session.run(None, {name: np.asarray(x, dtype=np.float32)})[0]
        return out.argmax(1) if out.ndim == 2 else out.astype(int)

    return predict


def test_a_copy_good_only_in_the_attackers_region_is_judged_on_the_test_rows(shifted, tmp_path):
    model, target, data, x_region = shifted
    finding = PathFinding()(target, data, budget=1000, ctx=CheckContext(tmp_path))
    copy = _copy(tmp_path / finding.evidence["model"])
    on_test = float(np.mean(copy(data.x_test) == model.predict(data.x_test)))
    in_region = float(np.mean(copy(x_region) == model.predict(x_region)))
    # The two regions part widely: the copy is good where the attacker looked, not on the task.
    assert in_region >= 0.95 and on_test < 0.8
    assert finding.metrics["fidelity"] == pytest.approx(on_test)
    low, high = finding.metrics["fidelity_ci"]
    assert low <= on_test <= high and high < 0.9  # the interval is over the 400 test rows
    assert finding.metrics["fidelity_uniform"] >= 0.95  # reported beside it, not deciding
    # Not stolen on the task's rows; and the budget ran out before the copy was verified, so
    # the unfinished copy decides nothing (not a pass either).
    assert finding.status is Status.INCONCLUSIVE and "ran out" in finding.reason, finding.summary
    # The summary says which number decided and where the other one was measured.
    assert "held-out test rows, which decide" in finding.summary, finding.summary
    assert "random inputs within the attacker's data range" in finding.summary, finding.summary
    assert finding.queries <= 1000 and finding.evaluation_queries >= len(data.x_test)


def test_equation_solving_says_its_random_inputs_span_the_input_range(linear_target, blob_data):
    finding = EquationSolving()(linear_target, blob_data, budget=1000)
    assert finding.status is Status.VULNERABLE
    assert "100.0% of the held-out test rows, which decide" in finding.summary, finding.summary
    assert "random inputs over the input range" in finding.summary, finding.summary
