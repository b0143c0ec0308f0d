"""Every FM10 detector flags mnist_cnn_backdoor and passes its clean twin mnist_cnn_clean.

The twin is scanned with the backdoor's data set (same trigger, same poisoned-row list
absent), so both controls face the same question.
"""
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.training_time.fm10_activation_clustering import ActivationClustering
from redline.checks.training_time.fm10_max_margin import MaxMargin
from redline.checks.training_time.fm10_neural_cleanse import NeuralCleanse
from redline.checks.training_time.fm10_spectral_signatures import SpectralSignatures
from redline.checks.training_time.fm10_strip import Strip
from redline.defences.rounding import RoundedTarget
from redline.findings import Status
from redline.targets.callable import CallableTarget


@pytest.fixture(scope="module")
def controls():
    return {name: (zoo.load_target(name), zoo.load_data_for(name)) for name in ("mnist_cnn_backdoor", "mnist_cnn_clean")}


def both(controls, check, budget=None, ctx=None):
    return [check(t, d, budget=budget, ctx=ctx) for t, d in controls.values()]


def test_neural_cleanse_whitebox(controls, tmp_path):
    bad, good = both(controls, NeuralCleanse(steps=60, n_images=10), ctx=CheckContext(tmp_path))
    assert bad.status is Status.VULNERABLE and bad.metrics["flagged_classes"] == [0]
    assert bad.metrics["anomaly_index"] > 2 and bad.metrics["method"] == "autograd"
    assert good.status is Status.NOT_VULNERABLE and good.metrics["flagged_classes"] == []
    assert bad.queries == 60 * 10 * 10 and bad.queries <= NeuralCleanse.default_budget
    assert (tmp_path / bad.evidence["plots"][0]).exists()


def test_neural_cleanse_plans_within_a_small_budget(controls):
    target, data = controls["mnist_cnn_clean"]
    finding = NeuralCleanse(steps=1000, n_images=10)(target, data, budget=2_500)
    assert finding.queries <= 2_500 and finding.metrics["steps"] == 25
    # Too few steps for the masks to settle (they start at half the image): the clean CNN's
    # MAD index is 6 here, so a verdict would be a false alarm; no verdict, and what would decide.
    assert finding.status is Status.INCONCLUSIVE and "still shrinking" in finding.reason, finding.summary
    assert "budget of about" in finding.reason
    assert NeuralCleanse(n_images=10)(target, data, budget=50).status is Status.NOT_APPLICABLE


@pytest.mark.slow
def test_neural_cleanse_gradient_free(controls):
    """Probabilities only (a callable, no gradients): NES on a 4x4 grid of mask/pattern cells."""
    results = []
    for target, data in controls.values():
        blackbox = CallableTarget(target._predict, input_spec=target.input_spec, n_classes=10)
        results.append(NeuralCleanse()(blackbox, data, budget=300_000))
    bad, good = results
    assert bad.metrics["method"] == "nes" and bad.queries == 300 * 10 * 8 * 11 <= 300_000
    assert bad.status is Status.VULNERABLE and bad.metrics["flagged_classes"] == [0]
    assert good.status is Status.NOT_VULNERABLE and good.metrics["flagged_classes"] == []
    # Measured over seeds 0-3: the backdoor's smallest mask 2.7-5.6x below the next, the twin's within 1.6x.
    assert bad.metrics["decision"] == "separation" and bad.metrics["separation"] > 2.5
    assert good.metrics["separation"] < 1.7


def test_neural_cleanse_rejects_bad_parameters(controls):
    target, data = controls["mnist_cnn_clean"]
    for bad in ({"blackbox_grid": 0}, {"blackbox_lr": 0}, {"blackbox_separation": 1}, {"classes": [0, 1]}):
        finding = NeuralCleanse(**bad)(target, data)
        assert finding.status is Status.ERROR and "traceback" not in finding.evidence, bad


def test_max_margin(controls):
    bad, good = both(controls, MaxMargin(steps=60))
    assert bad.status is Status.VULNERABLE and bad.metrics["flagged_classes"] == [0]
    assert good.status is Status.NOT_VULNERABLE
    assert RoundedTarget(controls["mnist_cnn_clean"][0]).capabilities.gradients is False
    rounded = MaxMargin()(RoundedTarget(controls["mnist_cnn_clean"][0]), controls["mnist_cnn_clean"][1])
    assert rounded.status is Status.NOT_APPLICABLE


@pytest.mark.parametrize("check", [ActivationClustering(), SpectralSignatures()], ids=lambda c: c.id)
def test_training_data_detectors(controls, check):
    bad, good = both(controls, check)
    assert bad.status is Status.VULNERABLE and bad.metrics["flagged_classes"] == [0]
    assert bad.metrics["precision"] >= 0.9
    # Clustering finds nearly all poisoned rows; the spectral score removes only its top 1.5 epsilon.
    assert bad.metrics["recall"] >= (0.8 if check.id == "FM10.activation_clustering" else 0.2)
    assert good.status is Status.NOT_VULNERABLE and good.metrics["flagged_samples"] == 0
    # Without ground truth only counts are reported.
    target, data = controls["mnist_cnn_backdoor"]
    data.meta, saved = {k: v for k, v in data.meta.items() if k != "poisoned_indices"}, data.meta
    try:
        blind = check(target, data)
    finally:
        data.meta = saved
    assert "precision" not in blind.metrics and blind.metrics["flagged_samples"] == bad.metrics["flagged_samples"]


def test_strip(controls):
    bad, good = both(controls, Strip(n_inputs=50, overlays=10), budget=1_500)
    assert bad.status is Status.VULNERABLE and bad.metrics["flagged_classes"] == [0]
    assert bad.metrics["detection_rate"] >= 0.5 and bad.metrics["false_rejection_rate"] <= 0.2
    assert good.status is Status.NOT_VULNERABLE and good.metrics["detection_rate"] < 0.3
    assert bad.queries == 3 * 50 * 10 and bad.evaluation_queries == 50


def test_strip_without_triggered_inputs_is_not_applicable(controls):
    target, data = controls["mnist_cnn_clean"]
    saved = data.meta
    data.meta = {}
    try:
        assert Strip()(target, data).status is Status.NOT_APPLICABLE
    finally:
        data.meta = saved


@pytest.mark.parametrize("rows, clean, width", [(200, 60, 300), (200, 60, 16), (30, 120, 40)])
def test_spectral_whitening_in_the_clean_span_equals_the_full_ledoit_wolf_whitening(rows, clean, width):
    # The check whitens in the span of the clean rows (fast for wide layers); the scores and
    # the eigenvalue must be those of whitening by the full shrunk covariance.
    import numpy as np
    from sklearn.covariance import LedoitWolf

    from redline.checks.training_time.fm10_spectral_signatures import _signature_scores

    rng = np.random.default_rng(width)
    scale = rng.uniform(0.1, 3.0, size=width)
    acts, held = rng.normal(size=(rows, width)) * scale, rng.normal(size=(clean, width)) * scale
    acts[:10] += 4.0 * scale  # a few rows share a direction, as poisoned rows do
    centred = acts - acts.mean(axis=0)
    values, vectors = np.linalg.eigh(LedoitWolf().fit(held).covariance_)
    whitened = centred @ (vectors / np.sqrt(np.maximum(values, 1e-6 * values.max())))
    _, singular, vt = np.linalg.svd(whitened, full_matrices=False)
    scores, top = _signature_scores(acts, held)
    np.testing.assert_allclose(scores, (whitened @ vt[0]) ** 2, rtol=1e-6, atol=1e-9)
    assert top == pytest.approx(singular[0] ** 2 / rows, rel=1e-9)


@pytest.mark.parametrize("whiten", [True, False])
def test_spectral_signatures_on_activations_without_spread_is_inconclusive_not_a_finding(monkeypatch, whiten):
    # Two of three classes with constant activations (dead units): their top eigenvalue is 0,
    # the median is 0, and a ratio to it would flag the one class that varies at all.
    import numpy as np

    from redline.checks.training_time import fm10_spectral_signatures as module
    from redline.data.base import Dataset
    from redline.targets.base import InputSpec

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)

    def activations(target, x):
        acts = np.zeros((len(x), 8))
        acts[y == 2] = rng.normal(size=(20, 8))
        return acts, "penultimate"

    monkeypatch.setattr(module, "penultimate_activations", activations)
    data = Dataset(name="flat", x_train=np.zeros((60, 4)), y_train=y, x_test=np.zeros((60, 4)), y_test=y)
    target = CallableTarget(lambda x: np.full((len(x), 3), 1 / 3), input_spec=InputSpec(shape=(4,)), n_classes=3)
    finding = SpectralSignatures(whiten=whiten)(target, data, budget=1000)
    if whiten:  # the flat classes have no held-out covariance to whiten by: one class is left
        assert finding.status is Status.NOT_APPLICABLE, (finding.status, finding.reason)
        assert "[0, 1] have no spread" in finding.reason
    else:
        assert finding.status is Status.INCONCLUSIVE, (finding.status, finding.reason)
        assert "without spread" in finding.reason
