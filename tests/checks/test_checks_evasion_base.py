"""The evasion base (checks/evasion/base.py) through two toy attacks defined here: every
example is judged again through the target's predict, minimisation attacks count only
breaks within epsilon, and the base's own queries are evaluation queries."""
import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.checks.base import Needs
from redline.checks.evasion.base import EVASION_METRICS, Attempt, EvasionCheck, Plan
from redline.data.base import Dataset
from redline.findings import Status
from redline.util.epsilon import EPSILON_METRICS


class PushAcross(EvasionCheck):
    """Moves feature 0 of every input to 0.5 past the boundary x0 = 0 of the model below;
    ``lie``: returns the inputs unchanged while claiming it broke them."""

    id = "TEST.push"
    mode = "FM01"
    title = "toy minimisation attack"
    needs = Needs(roles=("test",))
    metrics = (*EVASION_METRICS, *EPSILON_METRICS)
    minimizes = True
    norm = "linf"

    def __init__(self, epsilon: float = 0.05, n_inputs: int = 40, success_threshold: float = 0.3, lie: bool = False):
        self.epsilon = epsilon
        self.n_inputs = n_inputs
        self.success_threshold = success_threshold
        self.lie = lie

    def attack_epsilon(self, target):
        return float(self.epsilon)

    def plan(self, run):
        return Plan(len(run.xa))

    def run_attack(self, run):
        x_adv = run.xa.copy()
        if not self.lie:
            x_adv[:, 0] = -np.sign(run.xa[:, 0]) * 0.5
        return Attempt(x_adv, queries=np.ones(run.n), found=np.ones(run.n, dtype=bool))

    def summary(self, run, attempt, metrics):
        return f"{int(run.success.sum())} of {run.n} pushed across within epsilon"


@pytest.fixture(scope="module")
def setup():
    target = ArrayTarget([[1.0, -1.0], [0.0, 0.0]], [0.0, 0.0])  # class 0 where x0 > 0; range [-10, 10]
    x = np.random.default_rng(0).uniform(-1, 1, size=(200, 2)).astype(np.float32)
    return target, Dataset("plane", x_test=x, y_test=target.predict_labels(x))


def test_only_breaks_within_epsilon_count_and_sizes_are_in_range_units(setup):
    target, data = setup
    finding = PushAcross(epsilon=0.05)(target, data, seed=0)  # 0.05 of the range 20: one raw unit
    idx = np.random.default_rng(0).permutation(200)[:40]
    near = np.abs(data.x_test[idx, 0]) + 0.5 <= 1.0 * (1 + 1e-9)  # the push costs |x0| + 0.5 raw units
    m = finding.metrics
    assert m["clean_accuracy"] == 1.0 and m["attacked_inputs"] == 40
    assert m["success_rate"] == pytest.approx(near.mean()) and 0 < m["success_rate"] < 1
    assert m["median_linf"] <= 0.05 + 1e-9  # medians are of the breaks within epsilon
    assert "success_rate_ci" in m and "epsilon_units" in m
    # Clean answers, the re-check and the unperturbed inputs asked again are evaluation
    # queries; this attack sent none itself.
    assert finding.queries == 0 and finding.evaluation_queries == 120
    big = PushAcross(epsilon=0.2)(target, data, seed=0)
    assert big.metrics["success_rate"] == 1.0 and big.status is Status.VULNERABLE


def test_a_claimed_break_the_target_does_not_confirm_is_no_break(setup):
    target, data = setup
    finding = PushAcross(epsilon=0.2, lie=True)(target, data, seed=0)
    assert finding.metrics["success_rate"] == 0.0 and finding.metrics["median_linf"] is None
    assert finding.status is Status.NOT_VULNERABLE
