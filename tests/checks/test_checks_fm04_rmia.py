"""FM04.rmia's own pieces: the softened likelihood, the offline ``a`` chosen on the reference
models, and the offline check on its controls (the online check's controls are in
test_checks_fm04_membership.py)."""
import numpy as np
import pytest

from redline import zoo
from redline.checks.privacy.fm04_rmia import (
    RelativeMembershipInference,
    choose_a,
    softened_true_class_probability,
)
from redline.findings import Status


def test_softening_is_the_softmax_of_the_logits_over_the_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=6.0, size=(2, 50, 5))
    y = rng.integers(0, 5, size=50)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for temp in (0.5, 2.0, 3.0):
        soft = np.exp(logits / temp) / np.exp(logits / temp).sum(-1, keepdims=True)
        expected = np.take_along_axis(soft, np.broadcast_to(y[:, None], (2, 50, 1)), -1)[..., 0]
        np.testing.assert_allclose(softened_true_class_probability(probs, y, temp), expected, rtol=1e-9)
    np.testing.assert_array_equal(softened_true_class_probability(probs[0], y, 1.0), probs[0, np.arange(50), y])
    # An answer rounded to exactly 1 (the other classes 0) stays finite and at 1.
    hard = np.eye(5)[y]
    assert np.allclose(softened_true_class_probability(hard, y, 2.0), 1.0)


def _population(rng, n_models=4, n_rows=400):
    in_mask = np.zeros((n_models, n_rows), dtype=bool)
    for k in range(n_models):
        in_mask[k, rng.choice(n_rows, n_rows // 3, replace=False)] = True
    return in_mask


def test_a_is_chosen_on_the_references_and_follows_what_they_show():
    """When a row's difficulty shows the same in every model (OUT models agree on it), the full
    correction a = 1 separates a model's own rows best; when OUT models' answers are noise
    unrelated to the row, dividing by them hurts and a small a wins."""
    rng = np.random.default_rng(1)
    in_mask = _population(rng)
    difficulty = rng.uniform(0.02, 0.98, size=in_mask.shape[1])  # p of a model that did not train on the row
    consistent = np.where(in_mask, difficulty + 0.05, difficulty) * rng.uniform(0.9, 1.0, in_mask.shape)
    chosen = choose_a(consistent, in_mask)
    assert chosen["a"] >= 0.8 and chosen["stand_ins"] == 4, chosen
    assert chosen["auc_by_a"][f"{chosen['a']:g}"] > chosen["auc_by_a"]["0.3"] + 0.1
    noisy = np.where(in_mask, 0.9, 0.6) * rng.uniform(0.5, 1.0, in_mask.shape)  # no row harder than another
    assert choose_a(noisy, in_mask)["a"] <= 0.2
    assert choose_a(consistent[:1], in_mask[:1]) is None  # one model cannot stand in for the target


def test_offline_rmia_flags_the_overfit_model_and_passes_its_dp_twin_with_a_chosen():
    data = zoo.load_data_for("digits_mlp_overfit")
    check = RelativeMembershipInference(online=False, n_reference=4, reference="surrogate", n_population=300)
    weak = check(zoo.load_target("digits_mlp_overfit"), data)
    assert weak.status is Status.VULNERABLE and weak.metrics["tpr_at_fpr_0.01"] >= 0.05, weak.metrics
    choice = weak.evidence["a_choice"]
    assert weak.metrics["a"] == choice["a"] and choice["stand_ins"] >= 2 and "standing in" in weak.summary
    # What more reference models would buy, from the trend over 1, 2 and 4 of them.
    trend = weak.evidence["budget"]
    assert list(trend["by_reference_models"]) == ["1", "2", "4"] and trend["note"] in weak.summary
    assert weak.metrics["estimated_tpr_gain_2x_references"] == trend["estimated_gain"] >= 0
    hard = check(zoo.load_target("digits_mlp_regularized"), data)
    assert hard.status is Status.NOT_VULNERABLE, hard.metrics
    online = RelativeMembershipInference(n_reference=2, reference="surrogate", n_population=100)(
        zoo.load_target("digits_mlp_overfit"), data)
    assert online.metrics["a"] == 0.3 and "a_choice" not in online.evidence and online.metrics["temperature"] == 2.0
    assert online.metrics["estimated_tpr_gain_2x_references"] is None  # one pair: no trend to read


@pytest.mark.parametrize("params", [{"temperature": 0}, {"a": "most"}, {"a": 1.5}])
def test_bad_parameters_are_one_line_errors(params):
    finding = RelativeMembershipInference(**params)(zoo.load_target("digits_mlp_overfit"),
                                                     zoo.load_data_for("digits_mlp_overfit"))
    assert finding.status is Status.ERROR and "\n" not in finding.reason
