import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.extraction.fm05_equation_solving import EquationSolvingMlp
from redline.data.base import Dataset
from redline.defences.labels_only import LabelOnlyTarget
from redline.defences.rounding import RoundedTarget
from redline.findings import Status
from redline.targets.base import InputSpec

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")



def _network(activation):
    from redline.targets.torch import TorchTarget

    torch.manual_seed(0)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]()
    module = torch.nn.Sequential(torch.nn.Linear(6, 5), act, torch.nn.Linear(5, 3))
    target = TorchTarget(module, input_spec=InputSpec(shape=(6,), lower=-3.0, upper=3.0), n_classes=3)
    target.answered = 0
    inner = target._predict

    def predict(x):
        target.answered += len(x)
        return inner(x)

    target._predict = predict
    return target


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=600)
    return Dataset("toy", x[:200], y[:200], x[200:400], y[200:400], x[400:], y[400:])


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_recovers_a_one_hidden_layer_network(activation, toy, tmp_path):
    target = _network(activation)
    finding = EquationSolvingMlp()(target, toy, budget=1000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["fidelity"] == 1.0 and m["fidelity_uniform"] >= 0.995
    assert m["max_abs_param_error"] < 1e-3  # after aligning the network's symmetries
    assert finding.queries == 212  # 8 equations per unknown, 53 unknowns, 2 equations per query
    assert finding.queries + finding.evaluation_queries == target.answered
    session = ort.InferenceSession(str(tmp_path / finding.evidence["model"]))
    x = toy.x_test[:100]
    np.testing.assert_allclose(session.run(None, {"input": x})[0], target._predict(x), atol=1e-4)


def test_rounded_answers_and_few_queries_break_the_solution(toy):
    rounded = EquationSolvingMlp(hidden=5)(RoundedTarget(_network("relu"), 2), toy, budget=1000)
    assert rounded.status is Status.NOT_VULNERABLE and rounded.metrics["answer_error"] > 0.01
    few = EquationSolvingMlp(query_factor=1.0)(_network("relu"), toy, budget=1000)
    assert few.metrics["max_abs_param_error"] > 1e-2


def test_not_applicable_without_probabilities_width_or_budget(toy):
    target = _network("relu")
    assert EquationSolvingMlp()(LabelOnlyTarget(target), toy).status is Status.NOT_APPLICABLE
    unknown = EquationSolvingMlp()(RoundedTarget(target, 3), toy, budget=1000)
    assert unknown.status is Status.NOT_APPLICABLE and "hidden" in unknown.reason
    small = EquationSolvingMlp()(target, toy, budget=100)
    assert small.status is Status.NOT_APPLICABLE and "212 queries" in small.reason
