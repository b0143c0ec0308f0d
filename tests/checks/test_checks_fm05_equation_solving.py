import numpy as np
import onnxruntime as ort
import pytest
from redline_testkit import ArrayTarget

from redline.checks.base import CheckContext
from redline.checks.extraction.fm05_equation_solving import EquationSolving
from redline.defences.labels_only import LabelOnlyTarget
from redline.findings import Status


class NonLinearTarget(ArrayTarget):
    """Probabilities from a quadratic score: not a logistic model (negative control)."""

    def _predict(self, x):
        self.answered += len(x)
        z = (x.reshape(len(x), -1) ** 2) @ self.weights + self.bias
        p = np.exp(z - z.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)


def test_recovers_a_multinomial_logistic_model_with_d_plus_one_queries(linear_target, blob_data, tmp_path):
    finding = EquationSolving()(linear_target, blob_data, budget=1000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    assert finding.queries == 6  # d + 1 for d = 5
    assert finding.metrics["fidelity"] == 1.0 and finding.metrics["fidelity_uniform"] == 1.0
    assert finding.metrics["max_abs_probability_error"] < 1e-6
    assert finding.queries + finding.evaluation_queries == linear_target.answered
    # The stolen model is saved as ONNX and reproduces the target.
    assert finding.evidence["model"] == "artifacts/FM05.equation_solving.onnx"
    session = ort.InferenceSession(str(tmp_path / finding.evidence["model"]))
    x = blob_data.x_test[:50]
    stolen = session.run(None, {"input": x})[0]
    np.testing.assert_allclose(stolen, linear_target._predict(x), atol=1e-5)


def test_a_non_logistic_model_is_not_copied(blob_data):
    rng = np.random.default_rng(0)
    target = NonLinearTarget(rng.normal(size=(5, 3)), rng.normal(size=3))
    finding = EquationSolving()(target, blob_data, budget=1000)
    assert finding.status is Status.NOT_VULNERABLE
    assert finding.metrics["max_abs_probability_error"] > 1e-2


def test_labels_only_and_too_small_budget_are_not_applicable(linear_target, blob_data):
    assert EquationSolving()(LabelOnlyTarget(linear_target), blob_data).status is Status.NOT_APPLICABLE
    small = EquationSolving()(linear_target, blob_data, budget=5)
    assert small.status is Status.NOT_APPLICABLE and "6 queries" in small.reason


def test_binary_logistic_regression_parameters_are_recovered_exactly():
    sklearn = pytest.importorskip("sklearn.linear_model")
    from redline.data.base import Dataset
    from redline.targets.base import InputSpec
    from redline.targets.sklearn import SklearnTarget

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    model = sklearn.LogisticRegression(C=0.5).fit(x[:200], y[:200])
    target = SklearnTarget(model, input_spec=InputSpec(shape=(8,), lower=-5, upper=5))
    data = Dataset("toy", x[:200], y[:200], x[200:], y[200:])
    finding = EquationSolving()(target, data, budget=100)
    assert finding.status is Status.VULNERABLE and finding.queries == 9
    assert finding.metrics["max_abs_param_error"] < 1e-4


class RoundedTarget(ArrayTarget):
    """A logistic model whose answers are rounded to two decimals, as a hardened API sends them."""

    def _predict(self, x):
        return np.round(super()._predict(x), 2)


class RoundedNonLinearTarget(NonLinearTarget):
    def _predict(self, x):
        return np.round(super()._predict(x), 2)


def test_a_logistic_model_behind_rounded_answers_is_still_copied(linear_target, blob_data):
    # Five equations off by up to 0.005 each gave a copy 0.07 off, "not a logistic model".
    target = RoundedTarget(linear_target.weights, linear_target.bias)
    finding = EquationSolving()(target, blob_data, budget=1000)
    assert finding.status is Status.VULNERABLE, finding.summary
    assert finding.queries == 8 * 6 and "rounded to steps of 0.01" in finding.summary
    assert finding.metrics["max_abs_probability_error"] < 0.05
    rng = np.random.default_rng(0)
    other = EquationSolving()(RoundedNonLinearTarget(rng.normal(size=(5, 3)), rng.normal(size=3)), blob_data,
                              budget=1000)
    assert other.status is Status.NOT_VULNERABLE


def test_rounding_steps_are_read_from_the_answers():
    from redline.checks.extraction.fm05_equation_solving import rounding_step

    p = np.random.default_rng(0).dirichlet([1, 1, 1], 6)
    assert rounding_step(p) is None
    assert rounding_step(np.round(p, 2).astype(np.float32)) == pytest.approx(0.01)
    assert rounding_step(p.astype(np.float16)) == pytest.approx(2**-11)
