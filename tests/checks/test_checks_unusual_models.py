"""Shift, adequacy, poisoning and backdoor checks on models their authors did not try: a tree
whose confidences tie, random splits judged against noisy training shares, a handful of
evaluation rows, binary backdoored models, identifiers above 2**24. Each must end in a
verdict its measurements support, or say why it cannot decide."""
import numpy as np
import pytest

from redline.checks.robustness.adequacy import mix_against_priors, mix_against_sample
from redline.checks.robustness.fm14_deployment_shift import DeploymentShift
from redline.checks.robustness.fm14_shift_sensitivity import ShiftSensitivity
from redline.checks.robustness.fm17_test_adequacy import TestAdequacy
from redline.checks.training_time.fm02_label_flip import LabelFlip
from redline.checks.training_time.fm10_neural_cleanse import NeuralCleanse
from redline.checks.training_time.fm10_spectral_signatures import SpectralSignatures
from redline.data.base import Dataset
from redline.drift.estimate import _share_above, _threshold
from redline.findings import Status
from redline.targets import load_target


def test_atc_splits_tied_confidences_so_a_copy_of_the_test_rows_shows_no_drop():
    # A tree answers one-hot probabilities: every confidence is 1.0, and a threshold on a
    # tied value counted none of them, an estimated 0% on its own test rows (a 70-point drop).
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = (x[:, 0] + 0.7 * rng.normal(size=400) > 0).astype(int)
    model = DecisionTreeClassifier(random_state=0).fit(x[:200], y[:200])
    data = Dataset("tree", x[:200], y[:200], x[200:], y[200:], x_deploy=x[200:].copy(), spec="test:tree")
    finding = DeploymentShift()(load_target(model, data=data), data, seed=0)
    # No false drop; but no pass either: with every confidence tied, ATC returns the reference
    # accuracy in every resample (a drop of exactly 0, CI 0 to 0), whatever the deployment rows.
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert "same confidence" in finding.reason and "y_deploy" in finding.reason


def test_one_hot_answers_do_not_pass_a_deployment_sample_of_hard_rows():
    # The deployment rows come from the same inputs, with the tree's errors over-represented
    # (35% against 16% on the test rows): too subtle for the shift test, so nothing but the
    # estimate stood between the sample and a pass, and ATC's interval was exactly [0, 0].
    from sklearn.datasets import make_classification
    from sklearn.tree import DecisionTreeClassifier

    x, y = make_classification(n_samples=6000, n_features=10, n_informative=5, n_redundant=0, flip_y=0.0,
                               class_sep=1.0, random_state=0)
    model = DecisionTreeClassifier(random_state=0).fit(x[:2000], y[:2000])  # grown out: one-hot answers
    pool_x, pool_y = x[2400:], y[2400:]
    wrong = model.predict(pool_x) != pool_y
    rng = np.random.default_rng(0)
    pick = np.r_[rng.choice(np.flatnonzero(wrong), 28, replace=False), rng.choice(np.flatnonzero(~wrong), 52, replace=False)]
    data = Dataset("tree", x_test=x[2000:2400], y_test=y[2000:2400], x_deploy=pool_x[pick], spec="test:tree")
    for method in ("atc", "atc_mc", "doc"):
        finding = DeploymentShift(method=method)(load_target(model, data=data), data, seed=0)
        assert finding.status is Status.INCONCLUSIVE, (method, finding.summary)
        assert finding.metrics["p_value"] > 0.05  # the shift test alone would have let it pass


def test_atc_threshold_counts_the_needed_share_of_a_tied_run():
    scores = np.array([0.2, 0.5, 0.5, 0.5, 0.5, 0.9])
    threshold, tie_share = _threshold(scores, accuracy=0.5)  # three of six above
    assert threshold == 0.5 and tie_share == pytest.approx(0.5)
    assert _share_above(scores, threshold, tie_share) == pytest.approx(0.5)
    distinct = np.linspace(0, 1, 10)
    assert _threshold(distinct, 0.7)[1] == 0.0  # no tie: a cut between two values, as before


def test_a_test_split_is_compared_with_the_training_sample_not_with_its_shares_as_exact_priors():
    rng = np.random.default_rng(0)
    flagged_sample = flagged_priors = 0
    for _ in range(200):
        labels = rng.integers(0, 3, 400)
        train, test = np.bincount(labels[:200], minlength=3), np.bincount(labels[200:], minlength=3)
        flagged_sample += mix_against_sample(test, train)[0] < 0.01
        flagged_priors += mix_against_priors(test, train / train.sum())[0] < 0.01
    assert flagged_sample <= 6 < flagged_priors  # about 1% of random splits, where exact priors gave more


def test_test_adequacy_passes_a_perfect_model_on_random_splits():
    rng = np.random.default_rng(3)
    flagged = 0
    for _ in range(8):
        x = rng.normal(size=(240, 3)).astype(np.float32)
        y = rng.integers(0, 3, 240)
        data = Dataset("iid", x[:120], y[:120], x[120:], y[120:], spec="test:iid")
        lookup = {row.tobytes(): label for row, label in zip(x, y)}
        target = load_target(lambda v: np.eye(3)[[lookup[r.astype(np.float32).tobytes()] for r in v]], data=data)
        finding = TestAdequacy()(target, data, seed=0)
        flagged += any(u["kind"] == "class_mix" for u in finding.metrics.get("untested", []))
    assert flagged == 0


def test_label_flip_does_not_call_one_row_of_ten_a_drop():
    # 40 test rows leave 10 to evaluate on: one row turned wrong was a 10-point "drop", and
    # seeds 2 and 5 said vulnerable where 20,000 fresh rows show a drop of 0.4-0.6%.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=240) > 0).astype(int)
    data = Dataset("small", x[:200], y[:200], x[200:], y[200:], spec="test:small")
    target = load_target(LogisticRegression().fit(x[:200], y[:200]), data=data)
    statuses = set()
    for seed in range(6):
        finding = LabelFlip(strategies=("random",), defences=())(target, data, seed=seed)
        statuses.add(finding.status)
        assert finding.status is not Status.VULNERABLE, (seed, finding.summary)
        assert "accuracy_drop_p_value" in finding.metrics
    assert Status.INCONCLUSIVE in statuses  # the seeds with a one-row "drop" say they cannot tell


def test_binary_models_are_not_judged_by_statistics_that_need_three_classes():
    rng = np.random.default_rng(0)
    x = rng.random((120, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean((1, 2)) > 0.5).astype(int)
    data = Dataset("binary", x[:60], y[:60], x[60:], y[60:], modality="image", meta={"poisoned_indices": [0, 1, 2]},
                   spec="test:binary")
    target = load_target(lambda v: np.stack([1 - v.mean((1, 2, 3)), v.mean((1, 2, 3))], 1), data=data)
    for check in (NeuralCleanse(steps=5, n_images=4), SpectralSignatures()):
        finding = check(target, data, seed=0)
        assert finding.status is Status.NOT_APPLICABLE, (check.id, finding.status, finding.reason)
        assert "3" in finding.reason or "three" in finding.reason


def test_identifiers_above_float32_precision_are_sent_as_they_are():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (300, 3))
    x[:, 1] = 16777217 + 2 * rng.permutation(300)  # odd integers float32 cannot hold
    y = (x[:, 1] % 4 == 1).astype(int)
    data = Dataset("ids", x[:100], y[:100], x[100:], y[100:], spec="test:ids")

    def answer(v):
        hit = (np.asarray(v, np.float64)[:, 1] % 4 == 1).astype(int)
        return np.eye(2)[hit] * 0.9 + 0.05

    from redline.targets.base import InputSpec
    from redline.targets.callable import CallableTarget

    target = CallableTarget(answer, input_spec=InputSpec(shape=(3,), dtype="float64", lower=0.0, upper=2e7),
                            n_classes=2)
    for check in (ShiftSensitivity(), TestAdequacy()):
        finding = check(target, data, seed=0)
        accuracy = next(finding.metrics[k] for k in ("reference_accuracy", "accuracy") if k in finding.metrics)
        assert accuracy == 1.0, (check.id, finding.summary)


def test_a_regressor_scanned_as_a_classifier_is_refused_with_the_fix():
    # Diabetes scores are whole numbers, so they passed as class labels: FM15 crashed inside
    # its stand-in models and FM17 rated the 'accuracy' of a regressor at 0.7%. The model is
    # now refused at load (exit 2), before any check; a Target given as is still gets the
    # same fix from every check.
    import redline
    from redline.errors import UsageError
    from redline.targets.regression import SklearnRegressorTarget
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(x[:300], y[:300])
    roles = {"x_train": x[:300], "y_train": y[:300], "x_test": x[300:], "y_test": y[300:]}
    for check in ("FM15.natural_adversarial", "FM17.test_adequacy"):
        with pytest.raises(UsageError, match="is a regressor .* say task=regression"):
            redline.scan(model, roles, select=check)
        target = SklearnRegressorTarget(model, input_spec=redline.targets.InputSpec(shape=(10,), dtype="float64"))
        finding = redline.scan(target, roles, select=check).findings[0]
        assert finding.status is Status.ERROR, (check, finding.summary)
        assert "a regressor" in finding.reason and "task=regression" in finding.reason


def _breast_cancer_split():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    return x[order[:400]], y[order[:400]], x[order[400:]], y[order[400:]]


def test_test_adequacy_counts_each_distinct_held_out_row_once():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, ytr, xte, yte = _breast_cancer_split()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xtr, ytr)
    # 40 rows, each given 50 times, once passed as 2,000 rows measuring accuracy to +-0.8 points.
    repeated = Dataset("bc", xtr, ytr, np.repeat(xte[:40], 50, axis=0), np.repeat(yte[:40], 50), spec="test:bc")
    finding = TestAdequacy()(load_target(model, data=repeated), repeated, seed=0)
    assert finding.status is Status.VULNERABLE, finding.summary
    m = finding.metrics
    assert m["test_rows"] == 40 and m["duplicate_test_rows"] == 1960 and m["accuracy_half_width"] > 0.05
    # A 1-NN tested on its own training rows once passed at 100% +-0.9 points.
    knn = KNeighborsClassifier(1).fit(xtr, ytr)
    on_train = Dataset("bc", xtr, ytr, xtr.copy(), ytr.copy(), spec="test:bc")
    finding = TestAdequacy()(load_target(knn, data=on_train), on_train, seed=0)
    assert finding.status is Status.VULNERABLE and finding.metrics["training_rows_in_test"] == 400
    mixed = Dataset("bc", xtr, ytr, np.r_[xte, xtr[:50]], np.r_[yte, ytr[:50]], spec="test:bc")
    finding = TestAdequacy()(load_target(knn, data=mixed), mixed, seed=0)
    assert any(e["kind"] == "held_out" for e in finding.metrics["untested"])
    assert finding.metrics["test_rows"] == len(yte)


def test_shift_sensitivity_gives_ten_copies_of_the_rows_the_verdict_of_the_rows():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_wine(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(xtr, ytr)
    once = Dataset("wine", x_test=xte, y_test=yte, spec="test:wine")
    copies = Dataset("wine", x_test=np.repeat(xte, 10, axis=0), y_test=np.repeat(yte, 10), spec="test:wine")
    a = ShiftSensitivity()(load_target(model, data=once), once, seed=0)
    b = ShiftSensitivity()(load_target(model, data=copies), copies, seed=0)
    # Ten copies once made an 11-row cluster a significant 110-row shift ('vulnerable').
    assert a.status is b.status is Status.NOT_VULNERABLE, b.summary
    assert b.metrics["evaluated_inputs"] == len(yte)


def test_equal_rows_are_chance_draws_only_in_a_small_row_space():
    from redline.util.rows import distinct_unless_chance, repeats_can_be_chance

    rng = np.random.default_rng(0)
    categorical = rng.integers(0, 3, size=(2000, 5))  # 243 possible rows: repeats are draws
    measured = rng.normal(size=(200, 5))
    assert repeats_can_be_chance(categorical) and not repeats_can_be_chance(np.repeat(measured, 3, axis=0))
    assert len(distinct_unless_chance(categorical, None)) == 2000
    assert len(distinct_unless_chance(np.repeat(measured, 3, axis=0), None)) == 200
