"""Label-free accuracy estimation: close to the truth on digits, honest (None) where it cannot tell."""
import numpy as np
import pytest

from redline.drift.estimate import METHODS, AccuracyEstimate, estimate_accuracy
from redline.errors import DataError, UsageError


@pytest.fixture(scope="module")
def digits():
    """A logistic regression on the digits training rows; test rows as reference, pool rows to shift."""
    from sklearn.linear_model import LogisticRegression

    from redline.data import load_data

    data = load_data("builtin:digits")
    flat = lambda a: np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(flat(data.x_train), data.y_train)
    return model, flat(data.x_test), data.y_test, flat(data.x_pool), data.y_pool


def _truth(model, x, y):
    return float(np.mean(model.predict(x) == y))


def _noisy(x, sigma=0.3, seed=0):
    return np.clip(x + np.random.default_rng(seed).normal(0, sigma, x.shape), 0, 1)


def test_each_method_lands_near_the_truth_on_an_iid_sample(digits):
    model, x_ref, y_ref, x_dep, y_dep = digits
    truth = _truth(model, x_dep, y_dep)
    for method in METHODS:
        est = estimate_accuracy(model.predict_proba(x_ref), y_ref, model.predict_proba(x_dep), method=method,
                                reference_inputs=x_ref, deploy_inputs=x_dep, n_bootstrap=100)
        assert isinstance(est, AccuracyEstimate) and est.method == method
        assert est.accuracy is not None, (method, est.details)
        assert abs(est.accuracy - truth) < 0.04, (method, est.accuracy, truth)
        low, high = est.interval
        assert low <= est.accuracy <= high and high - low < 0.15
        assert est.drop == pytest.approx(est.reference_accuracy - est.accuracy)


def test_confidence_methods_see_most_of_a_noise_drop(digits):
    model, x_ref, y_ref, x_dep, y_dep = digits
    noisy = _noisy(x_dep)
    truth = _truth(model, noisy, y_dep)
    reference = _truth(model, x_ref, y_ref)
    assert reference - truth > 0.1  # the shift really hurts
    for method in ("atc", "atc_mc", "doc"):
        est = estimate_accuracy(model.predict_proba(x_ref), y_ref, model.predict_proba(noisy), method=method,
                                n_bootstrap=100)
        # Measured: within 7 points of a 12-point drop (ATC overshoots most); each sees at least half of it.
        assert abs(est.accuracy - truth) < 0.08, (method, est.accuracy, truth)
        assert est.drop > 0.5 * (reference - truth) and est.drop_interval[0] > 0.03, (method, est.drop_interval)


def test_atc_threshold_leaves_the_reference_accuracy_above_it(digits):
    model, x_ref, y_ref, _, _ = digits
    p = model.predict_proba(x_ref)
    # On the reference sample itself ATC returns the reference accuracy (to one row).
    est = estimate_accuracy(p, y_ref, p, method="atc_mc", n_bootstrap=20)
    assert est.accuracy == pytest.approx(est.reference_accuracy, abs=1.5 / len(y_ref))
    assert np.mean(p.max(axis=1) > est.details["threshold"]) == pytest.approx(est.reference_accuracy, abs=1.5 / len(p))


def test_importance_weighting_gives_up_when_the_sample_leaves_the_reference_support(digits):
    model, x_ref, y_ref, x_dep, _ = digits
    noisy = _noisy(x_dep)
    est = estimate_accuracy(model.predict_proba(x_ref), y_ref, model.predict_proba(noisy), method="iw",
                            reference_inputs=x_ref, deploy_inputs=noisy, n_bootstrap=20)
    assert est.accuracy is None and est.interval is None and est.drop is None
    assert "inconclusive" in est.details and est.details["domain_auc"] > 0.9
    same = estimate_accuracy(model.predict_proba(x_ref), y_ref, model.predict_proba(x_dep), method="iw",
                             reference_inputs=x_ref, deploy_inputs=x_dep, n_bootstrap=20)
    assert same.details["effective_sample_size"] > 0.5 * len(x_ref) and same.details["domain_auc"] < 0.65


def test_importance_weighting_follows_a_shift_inside_the_support():
    """Two features; the label is whether the first one (plus noise) exceeds 1. The deployment
    sample's mean moves towards that boundary (same spread: the log density ratio is linear,
    which the logistic domain classifier can learn), so more of it lies where the model errs."""
    rng = np.random.default_rng(0)
    x_ref = rng.normal(0, 1, size=(2000, 2))
    x_dep = rng.normal(0, 1, size=(1000, 2)) + np.array([0.9, 0.0])
    label = lambda x, seed: (x[:, 0] + np.random.default_rng(seed).normal(0, 0.4, len(x)) > 1).astype(int)
    y_ref, y_dep = label(x_ref, 1), label(x_dep, 2)
    probs = lambda x: np.stack([x[:, 0] <= 1, x[:, 0] > 1], axis=1).astype(float) * 0.8 + 0.1
    truth = float(np.mean(probs(x_dep).argmax(1) == y_dep))
    est = estimate_accuracy(probs(x_ref), y_ref, probs(x_dep), method="iw", reference_inputs=x_ref,
                            deploy_inputs=x_dep, n_bootstrap=50)
    assert est.reference_accuracy - truth > 0.05
    assert est.accuracy is not None and abs(est.accuracy - truth) < 0.03, (est.accuracy, truth, est.details)


def test_same_seed_same_interval_and_bad_inputs_are_one_line_errors(digits):
    model, x_ref, y_ref, x_dep, _ = digits
    p_ref, p_dep = model.predict_proba(x_ref), model.predict_proba(x_dep)
    a = estimate_accuracy(p_ref, y_ref, p_dep, seed=3, n_bootstrap=30)
    b = estimate_accuracy(p_ref, y_ref, p_dep, seed=3, n_bootstrap=30)
    assert a.interval == b.interval
    with pytest.raises(UsageError, match="unknown accuracy estimation method"):
        estimate_accuracy(p_ref, y_ref, p_dep, method="magic")
    with pytest.raises(UsageError, match="reference_inputs and deploy_inputs"):
        estimate_accuracy(p_ref, y_ref, p_dep, method="iw")
    with pytest.raises(DataError, match="classes"):
        estimate_accuracy(p_ref, y_ref, p_dep[:, :5] / p_dep[:, :5].sum(1, keepdims=True))
    with pytest.raises(DataError, match="reference labels"):
        estimate_accuracy(p_ref, y_ref[:10], p_dep)
    with pytest.raises(DataError, match="probabilities"):
        estimate_accuracy(p_ref * 3, y_ref, p_dep)
