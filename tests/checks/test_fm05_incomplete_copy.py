"""An FM05 copy the attack did not finish (the budget ran out) that falls short of the fidelity
threshold is inconclusive, with the budget that would finish it when the check can tell,
never a pass."""
import re

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.checks.extraction.fidelity import judge_copy
from redline.checks.extraction.fm05_equation_solving import EquationSolving
from redline.checks.extraction.fm05_path_finding import PathFinding
from redline.findings import Status

pytest.importorskip("sklearn")


def test_judge_copy_calls_an_unfinished_copy_that_falls_short_inconclusive():
    short = {"fidelity": 0.9, "other_answers": 50, "majority_share": 0.6, "fidelity_beyond_majority": 0.75}
    assert judge_copy(short, 0.99) == (False, "")  # finished: a copy that falls short is a pass
    assert judge_copy(short, 0.99, "the budget ran out") == (False, "the budget ran out")
    near_guess = {**short, "fidelity": 0.995, "majority_share": 0.99, "fidelity_beyond_majority": 0.4}
    assert judge_copy(near_guess, 0.99, "the budget ran out") == (False, "the budget ran out")
    stolen = {**short, "fidelity": 0.995, "fidelity_beyond_majority": 0.98}
    assert judge_copy(stolen, 0.99, "the budget ran out") == (True, "")  # stolen before the end: stolen


@pytest.fixture(scope="module")
def fair():
    from redline import zoo

    return zoo.load_data_for("fair_tree")


def test_path_finding_out_of_budget_is_inconclusive_and_names_the_budget_that_finishes_it(fair):
    from redline import zoo

    small = PathFinding()(zoo.load_target("fair_tree"), fair, budget=150)
    assert small.status is Status.INCONCLUSIVE, small.summary
    assert not small.metrics["complete"] and small.metrics["fidelity"] < 0.99
    assert "budget of 150 queries ran out" in small.reason
    suggested = int(re.search(r"--budget (\d+)", small.reason).group(1))
    assert suggested > 150
    # The estimate is a floor the check can stand behind: that budget does finish this tree.
    enough = PathFinding()(zoo.load_target("fair_tree"), fair, budget=suggested)
    assert enough.status is Status.VULNERABLE


def test_path_finding_with_more_boxes_than_leaves_says_it_cannot_estimate():
    # A depth-5 tree whose leaves share answers: boxes outnumber leaves before the copy is
    # verified, so the leaves left cannot be counted; still inconclusive, not a pass.
    from sklearn.datasets import load_breast_cancer
    from sklearn.tree import DecisionTreeClassifier

    from redline.data.base import Dataset
    from redline.targets.base import InputSpec
    from redline.targets.sklearn import SklearnTarget

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order].astype(np.float32), y[order]
    model = DecisionTreeClassifier(max_depth=5, random_state=0).fit(x[:300], y[:300])
    data = Dataset("bc", x[:300], y[:300], x[300:], y[300:])
    finding = PathFinding()(SklearnTarget(model, input_spec=InputSpec.from_data(x)), data, budget=1500)
    m = finding.metrics
    assert not m["complete"] and m["leaves"] > m["true_leaves"] and m["fidelity"] < 0.99, finding.summary
    assert finding.status is Status.INCONCLUSIVE
    assert "cannot be estimated" in finding.reason and "--budget 3000" in finding.reason


def test_a_non_tree_model_that_exhausts_the_budget_is_still_not_copied(fair):
    # Every query answers differently: more budget would not finish a tree copy of it.
    from redline import zoo

    logreg = PathFinding()(zoo.load_target("fair_logreg"), fair, budget=300)
    assert logreg.status is Status.NOT_VULNERABLE and not logreg.metrics["complete"]


class RoundedTarget(ArrayTarget):
    def _predict(self, x):
        return np.round(super()._predict(x), 2)


def test_equation_solving_cut_short_on_rounded_answers_is_inconclusive(linear_target, blob_data):
    target = RoundedTarget(linear_target.weights, linear_target.bias)
    short = EquationSolving()(target, blob_data, budget=6)  # d + 1: no room to average the rounding out
    assert short.status is Status.INCONCLUSIVE, short.summary
    assert "--budget 48" in short.reason and "not behave as a logistic model" not in short.summary
    full = EquationSolving()(RoundedTarget(linear_target.weights, linear_target.bias), blob_data, budget=48)
    assert full.status is Status.VULNERABLE
