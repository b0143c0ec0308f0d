"""ShiftDetector: false alarms at most alpha on unshifted batches, power on clear shifts,
determinism from the seed, reuse on a stream, and one-line errors on bad input."""
import json

import numpy as np
import pytest
from scipy.stats import binom

from redline.drift import ShiftDetector, ShiftTest
from redline.errors import DataError, UsageError

ALPHA = 0.05


def _table(rng, n, shift=0.0):
    """Four continuous features and one categorical (3 values); ``shift`` moves feature 2."""
    x = rng.normal(size=(n, 5))
    x[:, 2] += shift
    x[:, 4] = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return x


def _probs(rng, n, tilt=0.0):
    """Softmax outputs of 4 classes; ``tilt`` raises class 0's logit."""
    logits = rng.normal(size=(n, 4))
    logits[:, 0] += tilt
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _max_false_alarms(trials, alpha=ALPHA):
    # More false alarms than this happen with probability under 0.1% at a true rate of alpha.
    return int(binom.ppf(0.999, trials, alpha))


@pytest.mark.parametrize("method", ["univariate", "mmd", "bbsd", "labels", "auto"])
def test_false_alarms_at_most_alpha_on_unshifted_batches(method):
    rng = np.random.default_rng(1)
    det = ShiftDetector(method=method, alpha=ALPHA, seed=0, permutations=100).fit(_table(rng, 600), _probs(rng, 600))
    trials = 90
    alarms = 0
    for i in range(trials):
        n = (10, 30, 100)[i % 3]
        alarms += det.test(_table(rng, n), _probs(rng, n)).shifted
    assert alarms <= _max_false_alarms(trials), f"{method}: {alarms} false alarms in {trials}"


def test_false_alarms_on_discrete_features_at_tiny_samples():
    # Ties everywhere (a 17-level feature like a digits pixel) and ten-row batches: KS must stay valid.
    rng = np.random.default_rng(2)
    levels = lambda n: rng.binomial(16, 0.3, size=(n, 6)).astype(float)  # noqa: E731
    det = ShiftDetector(method="univariate", seed=0).fit(levels(500))
    alarms = sum(det.test(levels(10)).shifted for _ in range(300))
    assert alarms <= _max_false_alarms(300)


@pytest.mark.slow
def test_classifier_method_false_alarms():
    rng = np.random.default_rng(3)
    det = ShiftDetector(method="classifier", seed=0).fit(_table(rng, 600))
    alarms = sum(det.test(_table(rng, 200)).shifted for _ in range(100))
    assert alarms <= _max_false_alarms(100)


def test_classifier_method_needs_rows_and_finds_a_clear_shift():
    rng = np.random.default_rng(3)
    det = ShiftDetector(method="classifier", seed=0).fit(_table(rng, 600))
    few = det.test(_table(rng, 15, shift=3.0))
    assert not few.shifted and "at least 20" in few.details["methods"]["classifier"]["note"]
    assert not det.test(_table(rng, 200)).shifted
    assert det.test(_table(rng, 200, shift=1.0)).shifted


@pytest.mark.parametrize("method", ["univariate", "mmd", "classifier", "auto"])
def test_power_on_a_clear_input_shift(method):
    rng = np.random.default_rng(4)
    det = ShiftDetector(method=method, seed=0).fit(_table(rng, 600), _probs(rng, 600))
    result = det.test(_table(rng, 100, shift=1.0), _probs(rng, 100))
    assert result.shifted and result.p_value <= ALPHA


@pytest.mark.parametrize("method", ["bbsd", "labels"])
def test_power_on_a_shift_of_the_model_outputs(method):
    rng = np.random.default_rng(5)
    det = ShiftDetector(method=method, seed=0).fit(None, _probs(rng, 600))
    assert not det.test(None, _probs(rng, 200)).shifted
    assert det.test(None, _probs(rng, 200, tilt=1.5)).shifted


def test_categorical_feature_shift_is_found_by_chi_square():
    rng = np.random.default_rng(6)
    det = ShiftDetector(method="univariate", seed=0).fit(_table(rng, 600))
    x = _table(rng, 200)
    x[:, 4] = rng.choice(3, size=200, p=[0.2, 0.3, 0.5])
    result = det.test(x)
    assert result.shifted
    top = min(result.per_feature, key=lambda f: f["p_adjusted"])
    assert top["feature"] == 4 and top["test"] == "chi2"
    # A value never seen in the reference counts as a category of its own.
    x = _table(rng, 200)
    x[:40, 4] = 7
    assert det.test(x).shifted


def test_per_feature_report_names_the_moved_feature():
    rng = np.random.default_rng(7)
    det = ShiftDetector(method="univariate", correction="holm", seed=0).fit(_table(rng, 600))
    result = det.test(_table(rng, 150, shift=1.0))
    assert [f["feature"] for f in result.per_feature] == [0, 1, 2, 3, 4]
    assert [f["test"] for f in result.per_feature] == ["ks", "ks", "ks", "ks", "chi2"]
    moved = result.per_feature[2]
    assert moved["p_adjusted"] <= ALPHA < min(f["p_adjusted"] for i, f in enumerate(result.per_feature) if i != 2)
    assert result.details["methods"]["univariate"]["most_shifted"] == 2


def test_auto_combines_methods_by_bonferroni():
    rng = np.random.default_rng(8)
    det = ShiftDetector(seed=0).fit(_table(rng, 600), _probs(rng, 600))
    result = det.test(_table(rng, 60, shift=0.6), _probs(rng, 60))
    assert result.method == "bbsd+univariate+mmd"
    ps = {name: m["p_value"] for name, m in result.details["methods"].items()}
    assert result.p_value == pytest.approx(min(1.0, 3 * min(ps.values())))
    assert result.details["decided_by"] == min(ps, key=ps.get)
    assert result.shifted == (result.p_value <= ALPHA)
    # Without outputs auto tests the inputs only; with labels only, the labels' chi-square.
    assert ShiftDetector().fit(_table(rng, 100)).test(_table(rng, 20)).method == "univariate+mmd"
    # A list of names is the same as names joined by "+".
    listed = ShiftDetector(method=["bbsd", "mmd"]).fit(_table(rng, 100), _probs(rng, 100))
    assert listed.test(_table(rng, 20), _probs(rng, 20)).method == "bbsd+mmd"
    labels = rng.integers(0, 3, 100)
    assert ShiftDetector().fit(_table(rng, 100), labels).test(_table(rng, 20), labels[:20]).method == "labels+univariate+mmd"


def test_images_are_flattened_and_reduced_for_the_kernel_test():
    rng = np.random.default_rng(9)
    images = lambda n, b=0.0: np.clip(rng.random((n, 1, 12, 12)) * 0.5 + b, 0, 1)  # noqa: E731
    det = ShiftDetector(seed=0).fit(images(400))
    clean, bright = det.test(images(50)), det.test(images(50, 0.1))
    assert clean.details["reduction"] == {"univariate": "none", "kernel": "pca"}
    assert len(clean.per_feature) == 144
    assert bright.shifted and not clean.shifted
    # A named reduction feeds the univariate tests too: components instead of pixels.
    det = ShiftDetector(method="univariate", reduce="random", components=8, seed=0).fit(images(400))
    assert [f["feature"] for f in det.test(images(50)).per_feature] == [f"rp{i}" for i in range(8)]


def test_same_seed_same_answer_and_test_is_pure():
    rng = np.random.default_rng(10)
    ref, out = _table(rng, 800), _probs(rng, 800)
    batches = [(_table(rng, 700, shift=s), _probs(rng, 700)) for s in (0.0, 0.1, 0.0)]
    a = ShiftDetector(seed=3).fit(ref, out)
    b = ShiftDetector(seed=3).fit(ref, out)
    first = [a.test(*batch).to_dict() for batch in batches]
    assert first == [b.test(*batch).to_dict() for batch in batches]
    # A window's answer depends on nothing but the window: re-testing in reverse order agrees.
    assert [a.test(*batch).to_dict() for batch in reversed(batches)] == first[::-1]
    # The permutations (and the kernel rows drawn from 800) follow the seed.
    other = ShiftDetector(seed=4).fit(ref, out).test(*batches[0]).to_dict()
    assert other["details"]["methods"]["mmd"]["statistic"] != first[0]["details"]["methods"]["mmd"]["statistic"]


def test_stream_of_windows_flags_from_where_the_shift_starts():
    rng = np.random.default_rng(11)
    det = ShiftDetector(seed=0).fit(_table(rng, 1000), _probs(rng, 1000))
    flags = []
    for window in range(12):
        shift = 1.0 if window >= 8 else 0.0
        flags.append(det.test(_table(rng, 100, shift=shift), _probs(rng, 100, tilt=shift)).shifted)
    assert flags[8:] == [True] * 4
    assert sum(flags[:8]) <= 1


def test_to_dict_is_json_ready():
    rng = np.random.default_rng(12)
    result = ShiftDetector(seed=0).fit(_table(rng, 200), _probs(rng, 200)).test(_table(rng, 30), _probs(rng, 30))
    assert isinstance(result, ShiftTest)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"shifted", "p_value", "statistic", "method", "per_feature", "details"}
    assert isinstance(data["shifted"], bool) and data["details"]["n_sample"] == 30


# ------------------------------------------------------------------ bad input
def _fitted():
    rng = np.random.default_rng(13)
    return ShiftDetector(seed=0).fit(_table(rng, 100), _probs(rng, 100)), rng


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda rng: (_table(rng, 30)[:, :4], _probs(rng, 30)), "shape"),
        (lambda rng: (_table(rng, 3), _probs(rng, 3)), "at least"),
        (lambda rng: (np.where(np.eye(30, 5) > 0, np.nan, _table(rng, 30)), _probs(rng, 30)), "NaN"),
        (lambda rng: (_table(rng, 30), None), "outputs"),
        (lambda rng: (_table(rng, 30), _probs(rng, 29)), "rows"),
        (lambda rng: (_table(rng, 30), _probs(rng, 30)[:, :3]), "columns"),
        (lambda rng: (np.ones(30), _probs(rng, 30)), "2-D"),
        (lambda rng: ([["a"] * 5] * 30, _probs(rng, 30)), "numeric"),
        (lambda rng: (np.zeros((0, 5)), _probs(rng, 0)), "empty"),
        (lambda rng: (None, _probs(rng, 30)), "inputs"),
    ],
)
def test_bad_sample_is_a_one_line_data_error(make, message):
    det, rng = _fitted()
    inputs, outputs = make(rng)
    with pytest.raises(DataError, match=message) as err:
        det.test(inputs, outputs)
    assert "\n" not in str(err.value)


def test_bad_reference_is_a_data_error():
    rng = np.random.default_rng(14)
    with pytest.raises(DataError, match="at least 20"):
        ShiftDetector().fit(_table(rng, 10))
    with pytest.raises(DataError, match="infinite"):
        ShiftDetector().fit(np.full((50, 3), np.inf))
    with pytest.raises(DataError, match="rows"):
        ShiftDetector().fit(_table(rng, 50), _probs(rng, 40))
    with pytest.raises(DataError, match="reference_outputs"):
        ShiftDetector(method="bbsd").fit(_table(rng, 50))
    with pytest.raises(DataError, match="integer labels"):
        ShiftDetector().fit(_table(rng, 50), rng.random(50))
    with pytest.raises(DataError, match="empty"):
        ShiftDetector().fit(None)


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": 0}, {"alpha": 1.5}, {"alpha": True}, {"method": "magic"}, {"method": "mmd+mmd"}, {"method": 3},
     {"correction": "fdr"}, {"reduce": "umap"}, {"permutations": 5}, {"components": 0}, {"seed": -1},
     {"kernel_rows": 2.5}, {"categorical": [9]}],
)
def test_bad_parameters_are_usage_errors_at_fit(kwargs):
    det = ShiftDetector(**kwargs)  # the constructor only stores them
    with pytest.raises(UsageError):
        det.fit(np.random.default_rng(0).normal(size=(50, 5)))


def test_test_before_fit_is_a_usage_error():
    with pytest.raises(UsageError, match="fit"):
        ShiftDetector().test(np.zeros((10, 2)))


def test_false_alarms_at_most_alpha_on_wide_inputs_through_principal_components():
    # Components fitted on the rows the batches are compared with would flag clean batches.
    rng = np.random.default_rng(15)
    images = lambda n: rng.random((n, 1, 12, 12))  # noqa: E731
    det = ShiftDetector(method="mmd", seed=0, permutations=100).fit(images(300))
    alarms = sum(det.test(images(30)).shifted for _ in range(60))
    assert alarms <= _max_false_alarms(60)
