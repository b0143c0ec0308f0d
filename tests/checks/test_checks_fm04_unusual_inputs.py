"""FM04 on data and models its authors did not try: labels that are not class indices,
logits for probabilities, one-sided class mixes, tied answers, tiny pools and parameters
at their edges. Each must end in a clear finding (error, not applicable, inconclusive)
or a verdict that does not depend on how the input happened to be laid out."""
import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.privacy.fm04_lira import LikelihoodRatioAttack
from redline.checks.privacy.fm04_membership import ThresholdAttack
from redline.checks.privacy.fm04_rmia import RelativeMembershipInference, rmia_scores
from redline.checks.privacy.membership import match_classes, select_records
from redline.checks.privacy.reference_choice import plan_references
from redline.checks.privacy.reference_families import Family, parse_family
from redline.data.base import Dataset
from redline.errors import UsageError
from redline.findings import Status
from redline.targets import load_target


def blobs(n_train=60, n_test=60, n_pool=200, seed=0):
    rng = np.random.default_rng(seed)
    n = n_train + n_test + n_pool
    y = rng.integers(0, 3, size=n)
    x = (rng.normal(scale=1.5, size=(3, 5))[y] + rng.normal(size=(n, 5))).astype(np.float32)
    a, b = n_train, n_train + n_test
    return Dataset("blobs", x[:a], y[:a], x[a:b], y[a:b], x[b:] if n_pool else None, y[b:] if n_pool else None,
                   spec="test:blobs")


def constant(probs):
    return lambda x: np.tile(probs, (len(x), 1))


def test_labels_that_are_not_class_indices_are_an_error_not_a_verdict():
    # -1/+1 labels were read as columns: -1 as the last class, so a leaking model came out
    # not vulnerable at AUC 0.47; 1/2 labels on a two-class model crashed past the last column.
    data = blobs()
    two = Dataset("pm", data.x_train, np.where(data.y_train > 0, 1, -1), data.x_test,
                  np.where(data.y_test > 0, 1, -1), spec="test:pm")
    target = load_target(constant([0.4, 0.6]), data=two)
    for check in (ThresholdAttack(max_records=60), LikelihoodRatioAttack(n_reference=2, reference="logreg")):
        finding = check(target, two)
        assert finding.status is Status.ERROR
        assert "run from -1 to 1" in finding.reason and "class order" in finding.reason
        assert "traceback" not in finding.evidence
    shifted = Dataset("12", data.x_train, np.where(data.y_train > 0, 2, 1), data.x_test,
                      np.where(data.y_test > 0, 2, 1), spec="test:12")
    finding = ThresholdAttack(max_records=60)(target, shifted)
    assert finding.status is Status.ERROR and "run from 1 to 2" in finding.reason


def test_logits_for_probabilities_are_not_applicable():
    data = blobs()
    weights = np.random.default_rng(1).normal(size=(5, 3))
    target = load_target(lambda x: np.asarray(x, np.float64) @ weights, data=data)
    for check in (ThresholdAttack(max_records=60), RelativeMembershipInference(n_reference=2, reference="logreg",
                                                                               n_population=50)):
        finding = check(target, data)
        assert finding.status is Status.NOT_APPLICABLE, finding.reason
        assert "not class probabilities" in finding.reason and "softmax" in finding.reason


def test_rounded_probabilities_are_still_probabilities():
    data = blobs()
    target = load_target(lambda x: np.tile([0.333, 0.333, 0.333], (len(x), 1)), data=data)  # sums to 0.999
    finding = ThresholdAttack(max_records=60)(target, data)
    assert finding.status in (Status.INCONCLUSIVE, Status.NOT_VULNERABLE), finding.reason


def test_rmia_gives_tied_answers_one_score_whatever_their_order():
    # Ranked by position, members (first) got the lowest tie-breaks: AUC 0 in one order, 1 in the other.
    n, n_z = 40, 30
    p_x = np.full(n, 0.9)
    ref_x = np.full((2, n), 0.8)
    in_mask = np.zeros((2, n), dtype=bool)
    in_mask[0, ::2] = in_mask[1, 1::2] = True
    ref_z, z_mask = np.full((2, n_z), 0.8), np.zeros((2, n_z), dtype=bool)
    p_z = np.linspace(0.5, 1.0, n_z)
    scores = rmia_scores(p_x, p_z, ref_x, in_mask, ref_z, z_mask, online=True, a=0.3, gamma=1.0)
    assert np.ptp(scores) == 0
    flipped = rmia_scores(p_x[::-1], p_z, ref_x[:, ::-1], in_mask[:, ::-1], ref_z, z_mask, online=True, a=0.3, gamma=1.0)
    np.testing.assert_array_equal(flipped, scores)


def test_class_mixes_that_differ_are_matched_before_judging():
    # Members all of class 0, non-members of every class: a model that ignores its input
    # still gives each class its own loss, and unmatched it was called vulnerable.
    source = blobs(n_train=300, n_test=300, n_pool=1200, seed=3)
    members = source.x_pool[source.y_pool == 0][:200]
    data = Dataset("oneclass", members, np.zeros(len(members), np.int64), source.x_test, source.y_test,
                   source.x_pool, source.y_pool, spec="test:oneclass")
    target = load_target(constant([0.5, 0.3, 0.2]), data=data)
    finding = ThresholdAttack()(target, data)
    assert finding.status is not Status.VULNERABLE
    assert finding.metrics["auc"] == pytest.approx(0.5)
    assert "class by class" in finding.summary and "record_selection" in finding.evidence
    assert finding.metrics["members"] == finding.metrics["nonmembers"] == int((source.y_test == 0).sum())


def test_class_matching_leaves_a_random_split_alone_and_keeps_classes_equal_otherwise():
    rng = np.random.default_rng(0)
    y_in, y_out = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    members, nonmembers, note = match_classes(np.arange(500), y_in, np.arange(500), y_out, rng)
    assert note == "" and len(members) == len(nonmembers) == 500
    skewed = np.where(rng.random(500) < 0.6, 0, y_in)
    members, nonmembers, note = match_classes(np.arange(500), skewed, np.arange(500), y_out, rng)
    assert "class mixes differ" in note
    np.testing.assert_array_equal(np.bincount(skewed[members], minlength=4), np.bincount(y_out[nonmembers], minlength=4))


def test_too_few_matched_records_are_inconclusive():
    source = blobs(n_train=300, n_test=300, n_pool=400, seed=3)
    members = source.x_pool[source.y_pool == 0][:60]
    data = Dataset("few", members, np.zeros(len(members), np.int64), source.x_test[:30], source.y_test[:30],
                   source.x_pool, source.y_pool, spec="test:few")  # about 10 non-members of class 0
    finding = ThresholdAttack(max_records=60)(load_target(constant([0.5, 0.3, 0.2]), data=data), data)
    assert finding.status is Status.INCONCLUSIVE
    assert "class mixes differ" in finding.reason and "same classes would decide" in finding.reason


def test_inconclusive_says_when_the_data_not_the_budget_is_short():
    data = blobs()
    finding = ThresholdAttack(max_records=60)(load_target(constant([0.5, 0.3, 0.2]), data=data), data, budget=10_000)
    assert finding.status is Status.INCONCLUSIVE
    assert "the data holds only 60 train and 60 test rows" in finding.reason


def test_online_reference_counts_below_a_pair_fail_before_any_query():
    data = blobs()
    asked = []
    target = load_target(lambda x: asked.append(len(x)) or np.tile([0.5, 0.3, 0.2], (len(x), 1)), data=data)
    asked.clear()
    for check in (LikelihoodRatioAttack(n_reference=1), RelativeMembershipInference(n_reference=1)):
        finding = check(target, data)
        assert finding.status is Status.ERROR and "n_reference must be at least 2" in finding.reason
    assert sum(asked) == 0
    assert RelativeMembershipInference(n_reference=1, online=False)._validate() is None


def test_a_pool_too_small_to_screen_families_falls_back_to_the_surrogate():
    data = blobs(n_pool=6, seed=1)
    target = load_target(constant([0.5, 0.3, 0.2]), data=data)
    records = select_records(data, 60, 10_000, np.random.default_rng(0))
    plan = plan_references(target, data, records, target.predict(records.x), "auto")
    assert plan.source == "surrogate" and "at least 40 rows" in plan.describe()
    finding = LikelihoodRatioAttack(n_reference=2, max_records=60)(target, data)
    assert finding.status is not Status.NOT_APPLICABLE and finding.status is not Status.ERROR, finding.reason


def test_family_names_are_bounded_and_cnns_fit_their_depth():
    for name in ("forest@100000", "mlp@99999999999999999999", "mlp-9999999999x1", "mlp-8x8x8x8x8x8x8@2"):
        with pytest.raises(UsageError, match="at most"):
            parse_family(name)
    assert parse_family("logreg@5").name == "logreg@5" and parse_family("logreg").name == "logreg"
    assert "8x8" in Family("cnn", (4, 4, 4), 1).fits((1, 6, 6), "image")
    assert Family("cnn", (4, 4, 4), 1).fits((1, 8, 8), "image") == ""
    assert Family("cnn", (4, 4), 1).fits((1, 4, 4), "image") == ""


def test_per_class_threshold_needs_calibration_rows():
    data = blobs()
    finding = ThresholdAttack(per_class=True, n_calibration=0, max_records=60)(
        load_target(constant([0.5, 0.3, 0.2]), data=data), data)
    assert finding.status is Status.ERROR and "n_calibration must be at least" in finding.reason


def test_lira_views_with_one_model_a_side_keep_the_record_only(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = (rng.random((400, 1, 6, 6)) * 0.3 + y[:, None, None, None] * 0.5).astype(np.float32)
    data = Dataset("img", x[:100], y[:100], x[100:200], y[100:200], x[200:], y[200:], modality="image", spec="t:img")
    target = load_target(lambda v: np.stack([1 - v.mean((1, 2, 3)), v.mean((1, 2, 3))], 1), data=data)
    finding = LikelihoodRatioAttack(n_reference=2, augmentations=2, reference="logreg")(
        target, data, ctx=CheckContext(tmp_path))
    assert finding.metrics["views"] == 1, finding.reason
    assert "cannot measure which shifted views separate" in finding.evidence["budget"]["views"]["note"]


def test_a_class_mix_too_mild_for_the_old_trigger_no_longer_makes_a_constant_model_leak():
    # Members 75% of class 1 against 50% (chi-square p = 0.005): matching started only at
    # p < 0.001, and a model answering [0.3, 0.7] to everything was 'vulnerable' on 5 of 5 seeds.
    from sklearn.datasets import make_classification

    x, y = make_classification(3000, 10, n_informative=4, class_sep=1.0, random_state=1)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    ones, zeros = rng.permutation(np.flatnonzero(y == 1)), rng.permutation(np.flatnonzero(y == 0))
    train, test = np.r_[ones[:45], zeros[:15]], np.r_[ones[45:75], zeros[15:45]]
    pool = np.r_[ones[100:600], zeros[100:600]]
    data = Dataset("mix", x[train], y[train], x[test], y[test], x[pool], y[pool], spec="test:mix")
    target = load_target(lambda rows: np.tile([0.3, 0.7], (len(rows), 1)), data=data)
    for seed in range(3):
        finding = ThresholdAttack()(target, data, seed=seed)
        assert finding.status is not Status.VULNERABLE, finding.summary


def test_shadow_models_need_a_pool_of_more_than_one_class():
    # Shadows trained on 40 rows of one digit gave AUC exactly 0.5 and 'not_vulnerable' (or an
    # error with a logistic-regression family) on a forest the other checks flag.
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    from redline.checks.privacy.fm04_membership import ShadowModelAttack

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    threes = np.flatnonzero(y == 3)[:40]
    rest = np.setdiff1d(np.arange(len(x)), threes)
    data = Dataset("digits", x[rest[:600]], y[rest[:600]], x[rest[600:1200]], y[rest[600:1200]], x[threes], y[threes],
                   spec="test:digits")
    forest = RandomForestClassifier(50, random_state=0).fit(data.x_train, data.y_train)
    finding = ShadowModelAttack()(load_target(forest, data=data), data)
    assert finding.status is Status.NOT_APPLICABLE and "one class" in finding.reason
