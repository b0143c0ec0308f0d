"""Evasion and stealing on targets their authors did not try: a model wrong on every row, one
that answers at random, one that answers one class, data outside the declared input range,
inputs too small for a CNN. Each must end in a verdict the run demonstrates, or say why it
cannot decide; never a vulnerability that the model's own behaviour explains."""
import numpy as np
import pytest

from redline.checks.evasion.fm01_decision import DecisionAttack
from redline.checks.evasion.fm01_square import SquareAttack
from redline.checks.evasion.fm01_transfer import TransferAttack
from redline.checks.extraction.fidelity import judge_copy, majority_metrics
from redline.checks.extraction.fm05_equation_solving import EquationSolving
from redline.checks.extraction.fm05_learning import LearningExtraction
from redline.checks.extraction.fm05_path_finding import PathFinding
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets import load_target
from redline.targets.base import InputSpec
from redline.targets.callable import CallableTarget


def blobs(n=200, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.normal(0, 1, (n, d)) + 2.0 * y[:, None]).astype(np.float32)
    return Dataset("blobs", x[: n // 2], y[: n // 2], x[n // 2:], y[n // 2:], spec="test:blobs")


def logistic(x):
    z = 2.0 * (np.asarray(x, np.float64).reshape(len(x), -1).sum(1) - 4.0)
    p = 1 / (1 + np.exp(-z))
    return np.stack([1 - p, p], 1)


def test_a_target_wrong_on_every_row_is_inconclusive_not_robust():
    data = blobs()
    target = load_target(lambda x: logistic(x)[:, ::-1], data=data)  # always the other class
    for check in (SquareAttack(n_inputs=20), DecisionAttack(n_inputs=10)):
        finding = check(target, data, budget=400, seed=0)
        assert finding.status is Status.INCONCLUSIVE, (check.id, finding.status, finding.summary)
        assert "none of the" in finding.reason and "right" in finding.reason


def test_a_target_answering_at_random_is_not_called_evadable():
    data = blobs()
    draws = np.random.default_rng(1)
    target = load_target(lambda x: draws.dirichlet([1, 1], len(x)), data=data)
    for check, budget in ((SquareAttack(n_inputs=20), 400), (TransferAttack(n_inputs=20), 200)):
        finding = check(target, data, budget=budget, seed=0)
        assert finding.status is not Status.VULNERABLE, (check.id, finding.summary)
        if finding.status is Status.INCONCLUSIVE and "changed its answer" in finding.reason:
            assert finding.evidence["clean_recheck"]["changed"] > 0


def test_a_deterministic_target_is_asked_again_and_keeps_its_verdict():
    data = blobs()
    finding = SquareAttack(n_inputs=20, epsilon=0.5)(load_target(logistic, data=data), data, budget=2000, seed=0)
    assert finding.status is Status.VULNERABLE, finding.summary
    assert "clean_recheck" not in finding.evidence


def test_success_is_measured_against_epsilon_even_when_clipping_moves_the_input():
    # Class-1 rows sit at x0 ~ 3 while the target declares inputs in [0, 1]: clipping alone
    # moves them by about 2, forty times epsilon, and that move used to count as an evasion.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    x = rng.uniform(0, 1, (120, 4)).astype(np.float32)
    x[:, 0] = np.where(y == 1, 3.0, 0.2) + rng.uniform(-0.1, 0.1, 120)
    data = Dataset("outside", x[:60], y[:60], x[60:], y[60:], spec="test:outside")

    def answer(v):
        p = 1 / (1 + np.exp(-4 * (np.asarray(v)[:, 0] - 1.5)))
        return np.stack([1 - p, p], 1)

    for check in (SquareAttack(n_inputs=20, epsilon=0.05), TransferAttack(n_inputs=20, epsilon=0.05)):
        target = CallableTarget(answer, input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0), n_classes=2)
        finding = check(target, data, budget=400, seed=0)
        assert finding.status is not Status.VULNERABLE, (check.id, finding.summary)
        assert finding.metrics["success_rate"] == 0.0


def test_decision_attack_with_no_row_of_another_class_runs():
    data = blobs()
    one = Dataset("one", data.x_train, data.y_train, data.x_test[data.y_test == 1][:5],
                  data.y_test[data.y_test == 1][:5], spec="test:one")
    finding = DecisionAttack(n_inputs=5)(load_target(logistic, data=one), one, budget=300, seed=0)
    assert finding.status is not Status.ERROR, finding.reason


def test_learning_a_copy_of_a_model_on_tiny_images_takes_an_mlp():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    x = (rng.random((80, 1, 3, 3)) * 0.4 + 0.5 * y[:, None, None, None]).astype(np.float32)
    data = Dataset("tiny", x[:40], y[:40], x[40:], y[40:], modality="image", spec="test:tiny")
    target = load_target(lambda v: logistic(np.asarray(v).reshape(len(v), -1)[:, :4] * 2), data=data)
    finding = LearningExtraction(rounds=2, epochs=2, final_epochs=3, n_uniform=50)(target, data, budget=60, seed=0)
    assert finding.status is not Status.ERROR, finding.reason


def test_stealing_a_model_that_answers_one_class_proves_nothing():
    data = blobs()
    target = load_target(lambda x: np.tile([0.6, 0.4], (len(x), 1)), data=data)
    for check, budget in ((LearningExtraction(rounds=2, epochs=2, final_epochs=3, n_uniform=100), 100),
                          (EquationSolving(), 100), (PathFinding(n_uniform=100), 300)):
        finding = check(target, data, budget=budget, seed=0)
        assert finding.status is Status.INCONCLUSIVE, (check.id, finding.status, finding.summary)
        assert "a guess of that answer agrees as well" in finding.reason
        assert finding.metrics["majority_share"] == 1.0


def test_a_copy_must_beat_a_guess_of_the_most_common_answer():
    answers = np.r_[np.zeros(180, int), np.ones(20, int)]
    guess = np.zeros(200, int)
    metrics = {"fidelity": 0.9, **majority_metrics(answers, guess)}
    assert metrics["fidelity_beyond_majority"] == pytest.approx(0.0)
    assert judge_copy(metrics, 0.85) == (False, "")
    copy = answers.copy()
    copy[:3] = 1  # 3 disagreements of the guess's 20 remain... as new ones
    metrics = {"fidelity": float((copy == answers).mean()), **majority_metrics(answers, copy)}
    assert metrics["fidelity_beyond_majority"] == pytest.approx(1 - 3 / 20)
    assert judge_copy(metrics, 0.85) == (True, "")
    few = np.r_[np.zeros(195, int), np.ones(5, int)]
    stolen, why = judge_copy({"fidelity": 1.0, **majority_metrics(few, few)}, 0.85)
    assert not stolen and "only 5 other answers" in why


@pytest.mark.parametrize("check", [PathFinding(n_uniform=0), LearningExtraction(n_uniform=0),
                                   SquareAttack(epsilon=float("inf"))])
def test_parameters_at_their_edges_are_one_line_errors(check):
    data = blobs()
    finding = check(load_target(logistic, data=data), data, budget=300, seed=0)
    assert finding.status is Status.ERROR and "traceback" not in finding.evidence, finding.reason
    assert "must be" in finding.reason


def test_square_still_closing_in_when_its_queries_ran_out_is_inconclusive():
    # A wide logistic model one signed step breaks: Square needs about 1,100 queries an input
    # there, and at 312 its success curve was flat at 0, so the run said not_vulnerable.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = (rng.normal(0, 1, (200, 500)) + 2.0 * y[:, None]).astype(np.float32)
    data = Dataset("wide", x[:100], y[:100], x[100:], y[100:], spec="test:wide")
    model = LogisticRegression(max_iter=500).fit(data.x_train, data.y_train)
    finding = SquareAttack(n_inputs=16)(load_target(model, data=data), data, budget=5000, seed=0)
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert "still closing in" in finding.reason and "would turn" in finding.reason


def test_margins_that_level_off_leave_the_verdict_alone():
    from redline.checks.evasion.undecided import margins_still_falling

    start = np.full(20, 4.0)
    level = dict(start=start, half=np.full(20, 3.0), end=np.full(20, 2.99), threshold=0.3, budget=2000,
                 per_input=100)
    assert margins_still_falling(**level) == ""
    falling = dict(level, end=np.full(20, 2.0))  # one more unit per half: 4 more halves to 0
    assert "would turn 100%" in margins_still_falling(**falling)
