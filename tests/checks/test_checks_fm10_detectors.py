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


# -- several target classes and the grey zone (margins and mask sizes set directly) ---------
#
# The red team's MNIST CNNs (outside the zoo): a two-target backdoor (triggers to 7 and 2)
# and a 10x10 checkerboard trigger to 5. The numbers are the statistics the detectors
# measured on them; the honest CNN's are from the same recipe without poison.
TWO_TARGET_MARGINS = [25.0, 22.7, 83.7, 35.1, 32.4, 34.5, 43.0, 87.3, 33.1, 19.5]
BIG_TRIGGER_MARGINS = [26.3, 46.2, 36.0, 39.4, 30.7, 88.3, 49.3, 33.0, 23.6, 26.5]
HONEST_MARGINS = [26.4, 35.4, 42.9, 30.4, 34.9, 39.9, 43.4, 35.1, 27.0, 35.7]
BIG_TRIGGER_MASKS = [61.5, 63.3, 30.9, 26.4, 52.7, 14.6, 29.3, 58.7, 41.3, 43.9]  # 300 steps
TWO_TARGET_MASKS = [62.6, 134.2, 6.9, 40.1, 70.2, 52.4, 45.5, 10.5, 48.3, 77.8]  # 100 steps
HONEST_MASKS = [68.1, 66.5, 34.6, 32.1, 59.5, 39.5, 40.9, 56.4, 48.7, 43.0]


def _margin_target(margins, side=8):
    """A target whose class c has logit margins[c] * x[c] (pixel c of the flat image): from
    a black start, the largest margin class c reaches is margins[c] exactly."""
    import numpy as np
    import torch

    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    scale = torch.tensor(margins, dtype=torch.float32)

    class Pixels(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, : len(margins)] * scale

    spec = InputSpec(shape=(1, side, side), dtype="float32", lower=0.0, upper=1.0)
    return TorchTarget(Pixels(), input_spec=spec, n_classes=len(margins)), np


def _black_images(side=8, n=40, classes=10):
    import numpy as np

    from redline.data.base import Dataset

    x = np.zeros((n, 1, side, side), dtype=np.float32)
    y = np.arange(n) % classes
    return Dataset(name="black", x_train=x, y_train=y, x_test=x.copy(), y_test=y.copy(), x_pool=x.copy(),
                   y_pool=y.copy(), modality="image")


@pytest.mark.parametrize("margins, flagged", [(TWO_TARGET_MARGINS, [7, 2]), (BIG_TRIGGER_MARGINS, [5])],
                         ids=["two_targets", "big_trigger"])
def test_max_margin_flags_backdoors_the_all_class_mad_index_hid(margins, flagged):
    # Two target classes inflated the MAD of all ten (indices 2.37 and 2.27 < 2.5); the
    # large trigger's class was 1.79x the next class with index 2.39. Against the spread
    # of the other classes both stand far out.
    target, _ = _margin_target(margins)
    finding = MaxMargin()(target, _black_images(), seed=0)
    assert [round(v, 1) for v in finding.metrics["max_margin"].values()] == margins
    assert finding.status is Status.VULNERABLE, finding.summary
    assert finding.metrics["flagged_classes"] == flagged and finding.metrics["margin_ratio"] >= 1.5
    assert finding.metrics["anomaly_index"] > 2.5


def test_max_margin_grey_zone_is_inconclusive_and_the_honest_cnn_passes():
    # One class 1.45x the next: beyond every honest model measured, short of min_ratio.
    grey = list(HONEST_MARGINS)
    grey[6] = 1.45 * max(m for c, m in enumerate(HONEST_MARGINS) if c != 6)
    finding = MaxMargin()(_margin_target(grey)[0], _black_images(), seed=0)
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert finding.metrics["suspect_classes"] == [6] and finding.metrics["flagged_classes"] == []
    assert "class(es) [6]" in finding.reason and "1.45x" in finding.reason
    honest = MaxMargin()(_margin_target(HONEST_MARGINS)[0], _black_images(), seed=0)
    assert honest.status is Status.NOT_VULNERABLE and honest.metrics["suspect_classes"] == [], honest.summary


def test_max_margin_reads_a_staircase_of_honest_margins_as_honest():
    # An honest MNIST CNN with global average pooling: margins fall 1.3-2.0x at every step,
    # so a 1.7x gap after its second class says nothing (with three classes set apart the
    # gap after the third, 1.99x, is read as a suspect).
    staircase = [34.6, 26.8, 15.5, 7.8, 6.6, 5.2, 4.2, 4.1, 2.7, 1.7]
    finding = MaxMargin()(_margin_target(staircase)[0], _black_images(), seed=0)
    assert finding.status is Status.NOT_VULNERABLE and "staircase" in finding.summary, finding.summary
    assert finding.metrics["margin_ratio"] == pytest.approx(26.8 / 15.5, rel=1e-3)
    assert finding.metrics["rest_ratio"] == pytest.approx(15.5 / 7.8, rel=1e-3) and finding.metrics["suspect_classes"] == []
    wider = MaxMargin(max_classes=3)(_margin_target(staircase)[0], _black_images(), seed=0)
    assert wider.status is Status.INCONCLUSIVE and wider.metrics["suspect_classes"] == [0, 1, 2], wider.summary


def test_max_margin_keeps_a_backdoor_whose_honest_margins_fall_in_two_groups():
    # The red team's backdoored MLP: honest margins in two groups (24-36, 49-52) inflate the
    # rest's own deviation (index 2.1 against the rest, 2.7 against all ten): still flagged.
    margins = [33.9, 24.5, 51.4, 49.2, 35.7, 52.2, 50.5, 100.3, 29.2, 31.1]
    finding = MaxMargin()(_margin_target(margins)[0], _black_images(), seed=0)
    assert finding.status is Status.VULNERABLE and finding.metrics["flagged_classes"] == [7], finding.summary


def _cleanse_with_masks(monkeypatch, l1, steps=300, **params):
    """NeuralCleanse's verdict on trigger searches that ended with these mask sizes (MNIST-sized images)."""
    import numpy as np

    from redline.checks.training_time import fm10_neural_cleanse as module

    l1 = np.asarray(l1, dtype=np.float64)

    def searched(self, target, x, weights, classes, steps_run, ctx):
        k = len(classes)
        return l1, np.ones(k), np.zeros((k, 28, 28), np.float32), np.zeros((k, 1, 28, 28), np.float32), steps_run

    monkeypatch.setattr(module.NeuralCleanse, "_autograd", searched)
    target, _ = _margin_target(HONEST_MARGINS, side=28)
    return NeuralCleanse(steps=steps, **params)(target, _black_images(28), seed=0)


def test_neural_cleanse_grey_zone_is_inconclusive_not_a_pass(monkeypatch):
    # The large trigger's class 5 needs a mask 1.81x smaller than the next class: more than
    # any honest model with settled masks (1.55x), under the 2x bar. It used to pass as
    # "the masks are close together, not a shortcut".
    finding = _cleanse_with_masks(monkeypatch, BIG_TRIGGER_MASKS)
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert finding.metrics["suspect_classes"] == [5] and finding.metrics["flagged_classes"] == []
    assert "class(es) [5]" in finding.reason and "1.81x" in finding.reason
    assert "not a shortcut" not in finding.summary
    honest = _cleanse_with_masks(monkeypatch, HONEST_MASKS)
    assert honest.status is Status.NOT_VULNERABLE and honest.metrics["suspect_classes"] == [], honest.summary


def test_neural_cleanse_finds_several_targets(monkeypatch):
    finding = _cleanse_with_masks(monkeypatch, TWO_TARGET_MASKS, steps=100)
    assert finding.status is Status.VULNERABLE and sorted(finding.metrics["flagged_classes"]) == [2, 7]
    # Two target classes needing masks 2.5x smaller than any other, among widely spread
    # clean masks: against the MAD of all ten (indices 1.71 and 1.79 < 2) neither stood out,
    # and the old check passed the model.
    two = [61.5, 63.3, 11.6, 30.0, 52.7, 30.9, 29.3, 58.7, 41.3, 11.0]
    finding = _cleanse_with_masks(monkeypatch, two)
    assert finding.status is Status.VULNERABLE, finding.summary
    assert sorted(finding.metrics["flagged_classes"]) == [2, 9] and finding.metrics["candidate_gap"] > 2.5
    # Three (indices 1.35-1.53 against all ten) when up to three targets are looked for.
    three = [61.5, 63.3, 12.6, 12.0, 52.7, 30.9, 29.3, 58.7, 41.3, 11.0]
    assert _cleanse_with_masks(monkeypatch, three).status is not Status.VULNERABLE  # two at most by default
    finding = _cleanse_with_masks(monkeypatch, three, max_classes=3)
    assert finding.status is Status.VULNERABLE, finding.summary
    assert sorted(finding.metrics["flagged_classes"]) == [2, 3, 9] and finding.metrics["candidate_gap"] > 2.3
