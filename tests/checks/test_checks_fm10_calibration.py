"""The backdoor detectors on honest models they were not tuned on.

Every FM10 detector was developed on the zoo's MNIST CNN pair. Here each one faces clean,
honestly trained models of three other architectures (an MLP, a wide one-block CNN, and a
CNN trained with shifted images; redline.zoo.honest) on the 8x8 digits, and must not call
any of them backdoored. The suite runs one seed per architecture; the slow test runs four,
and benchmarks/bench_fm10_calibration.py sweeps MNIST-size models.
"""
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from redline.checks.training_time.fm10_activation_clustering import ActivationClustering
from redline.checks.training_time.fm10_max_margin import MaxMargin
from redline.checks.training_time.fm10_neural_cleanse import NeuralCleanse
from redline.checks.training_time.fm10_spectral_signatures import SpectralSignatures
from redline.checks.training_time.fm10_strip import Strip
from redline.data import load_data
from redline.findings import Status
from redline.util.triggers import Trigger
from redline.zoo.honest import honest_recipes, honest_target

ARCHITECTURES = tuple(honest_recipes())
DETECTORS = {
    "max_margin": lambda: MaxMargin(),
    # Fewer steps than the default keep the suite fast; the benchmark runs the defaults.
    "neural_cleanse": lambda: NeuralCleanse(steps=120, n_images=16),
    "activation_clustering": lambda: ActivationClustering(),
    "spectral_signatures": lambda: SpectralSignatures(),
    "strip": lambda: Strip(n_inputs=60, overlays=10),
}


@pytest.fixture(scope="module")
def digits():
    data = load_data("builtin:digits")
    # STRIP's triggered inputs: held-out images stamped with a patch none of these models saw.
    data.meta["trigger"] = Trigger(target_class=0, size=2).to_dict()
    return data


@pytest.fixture(scope="module")
def honest(digits):
    return {arch: honest_target(arch, digits, 0, quick=True) for arch in ARCHITECTURES}


def test_the_honest_models_are_real_classifiers(honest, digits):
    for arch, target in honest.items():
        accuracy = (target.predict_labels(digits.x_test) == digits.y_test).mean()
        assert accuracy > 0.85, (arch, accuracy)


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_no_detector_calls_an_honest_model_backdoored(detector, honest, digits):
    for arch, target in honest.items():
        finding = DETECTORS[detector]()(target, digits, seed=0)
        assert finding.status in (Status.NOT_VULNERABLE, Status.INCONCLUSIVE), (arch, finding.summary, finding.reason)


def test_the_margin_ratio_is_what_clears_an_honest_mlp(digits):
    """Seed 2's honest MLP has one class slightly ahead of tightly packed others: the MAD
    index alone (3.3 > 2.5) called it backdoored; its margin is only 1.2x the next class's."""
    target = honest_target("mlp", digits, 2, quick=True)
    finding = MaxMargin()(target, digits, seed=2)
    assert finding.metrics["anomaly_index"] > 2.5 and finding.metrics["margin_ratio"] < 1.5, finding.metrics
    assert finding.status is Status.NOT_VULNERABLE and "not a backdoor" in finding.summary
    assert MaxMargin(min_ratio=1.0)(target, digits, seed=2).status is Status.VULNERABLE  # the old rule


@pytest.mark.slow
@pytest.mark.parametrize("detector", list(DETECTORS))
def test_false_positive_rate_over_seeds(detector, digits):
    alarms, undecided = [], []
    for arch in ARCHITECTURES:
        for seed in range(4):
            finding = DETECTORS[detector]()(honest_target(arch, digits, seed, quick=True), digits, seed=seed)
            alarms.append(finding.status is Status.VULNERABLE)
            undecided.append(finding.status is Status.INCONCLUSIVE)
    assert sum(alarms) <= 0.05 * len(alarms), f"{detector}: {sum(alarms)} of {len(alarms)} honest models flagged"
    if detector in ("max_margin", "neural_cleanse"):
        # Their grey zone (a class beyond honest models' gaps, short of the bar) is rare on
        # honest models: 0 of 12 here, about 1 run in 67 over 29 honest models (docstrings).
        assert sum(undecided) <= 1, f"{detector}: {sum(undecided)} of {len(undecided)} honest models inconclusive"
