import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.extraction.fm05_learning import LearningExtraction
from redline.defences.labels_only import LabelOnlyTarget
from redline.findings import Status

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

FAST = {"rounds": 3, "epochs": 6, "final_epochs": 15}



def _counting(target):
    target.answered = 0
    inner = target._predict

    def predict(x):
        target.answered += len(x)
        return inner(x)

    target._predict = predict
    return target


@pytest.fixture(scope="module")
def digits():
    from redline import zoo

    return zoo.load_target("digits_mlp_overfit"), zoo.load_data_for("digits_mlp_overfit")


def test_copies_the_digits_network_and_saves_a_working_onnx_copy(digits, tmp_path):
    target, data = digits
    target = _counting(target)
    finding = LearningExtraction(**FAST)(target, data, budget=400, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.metrics
    assert finding.metrics["fidelity"] >= 0.9 and finding.queries == 400
    assert finding.metrics["synthetic_queries"] > 0
    assert finding.queries + finding.evaluation_queries == target.answered
    # The ONNX copy is the surrogate the fidelity was measured on.
    session = ort.InferenceSession(str(tmp_path / finding.evidence["model"]))
    copy = session.run(None, {"input": data.x_test.astype(np.float32)})[0]
    agreement = np.mean(copy.argmax(1) == target._predict(data.x_test).argmax(1))
    assert abs(agreement - finding.metrics["fidelity"]) < 1e-9


def test_fidelity_moves_with_the_budget_and_labels_still_work(digits):
    target, data = digits
    tiny = LearningExtraction(**FAST)(target, data, budget=20)
    assert tiny.status is Status.NOT_VULNERABLE and tiny.metrics["fidelity"] < 0.8
    labels = LearningExtraction(**FAST)(LabelOnlyTarget(target), data, budget=400)
    assert labels.metrics["soft_labels"] is False and labels.queries == 400
    assert labels.metrics["fidelity"] > tiny.metrics["fidelity"] + 0.1


def test_active_selection_beats_random_sampling_at_equal_budget(digits):
    target, data = digits
    active = LearningExtraction(**FAST)(target, data, budget=150)
    passive = LearningExtraction(strategy="random", augmentation="none", **FAST)(target, data, budget=150)
    assert active.metrics["fidelity"] >= passive.metrics["fidelity"] - 0.01


def test_tabular_targets_get_an_mlp_copy(linear_target, blob_data):
    finding = LearningExtraction(**FAST)(linear_target, blob_data, budget=150)
    assert finding.status is Status.VULNERABLE and finding.metrics["fidelity"] >= 0.9
    assert finding.queries + finding.evaluation_queries == linear_target.answered


def test_bad_parameters_are_errors(linear_target, blob_data):
    finding = LearningExtraction(strategy="psychic")(linear_target, blob_data, budget=100)
    assert finding.status is Status.ERROR and "strategy" in finding.reason
