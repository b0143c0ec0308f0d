"""ensemble: a zoo model checked by members; agreement passes, disagreement abstains or flags."""
from __future__ import annotations

import numpy as np
import pytest

from redline.defences import DefendedTarget, InputRejected, collect_events
from redline.defences.ensemble import Ensemble
from redline.errors import UsageError
from redline.targets.base import Capabilities, Target


class Contrarian(Target):
    """A deliberately different model: the fronted model's answers with the classes swapped."""

    def __init__(self, inner: Target, outputs: str = "probabilities"):
        super().__init__()
        self.inner, self.spec = inner, "test:contrarian"
        self.input_spec, self.n_classes = inner.input_spec, inner.n_classes
        self.capabilities = Capabilities(outputs=outputs)

    def _predict(self, x):
        p = self.inner._predict(x)[:, ::-1]
        return p if self.capabilities.outputs == "probabilities" else p.argmax(1)


@pytest.fixture(scope="module")
def fair():
    from redline.data import load_data
    from redline.targets import load_target

    return load_target("zoo:fair_logreg"), load_data("builtin:fair").x_test[:300]


def test_a_member_that_is_the_same_model_never_disagrees(fair):
    model, x = fair
    ensemble = Ensemble(members=["zoo:fair_logreg"], max_disagreement=0.0)
    out = DefendedTarget(model, [ensemble]).predict(x)
    np.testing.assert_allclose(out, model._predict(x), rtol=1e-6)
    assert ensemble.metrics()["ensemble_disagreement_rate"] == 0.0


def test_a_diverse_zoo_member_flags_the_rows_where_it_disagrees(fair):
    model, x = fair
    ensemble = Ensemble(members=["zoo:fair_tree"], max_disagreement=0.5, on_disagreement="flag")
    defended = DefendedTarget(model, [ensemble])
    with collect_events() as events:
        out = defended.predict(x)
    tree = ensemble._members_[0].predict_labels(x)
    differ = tree != model.predict_labels(x)
    assert 0 < differ.mean() < 0.5  # a different model, mostly in agreement
    rate = ensemble.metrics()["ensemble_disagreement_rate"]
    assert rate == pytest.approx(differ.mean())
    assert [e["event"] for e in events] == ["disagreement"] and events[0]["defence"] == "ensemble"
    # One member against the fronted model: a tie, which the fronted model's label wins.
    np.testing.assert_array_equal(out.argmax(1), model.predict_labels(x))


def test_a_contrarian_member_makes_the_guard_abstain(fair):
    model, x = fair
    ensemble = Ensemble(members=[Contrarian(model)], max_disagreement=0.5)
    with collect_events() as events, pytest.raises(InputRejected) as err:
        DefendedTarget(model, [ensemble]).predict(x[:5])
    assert err.value.reason == "abstained" and err.value.status == 422
    assert "disagree" in str(err.value) and events[0]["event"] == "abstained"


def test_two_members_outvote_the_fronted_model_with_their_mean(fair):
    model, x = fair
    members = [Contrarian(model), Contrarian(model, outputs="labels")]
    ensemble = Ensemble(members=members, max_disagreement=0.99, on_disagreement="flag")
    out = DefendedTarget(model, [ensemble]).predict(x[:20])
    np.testing.assert_allclose(out, model._predict(x[:20])[:, ::-1], rtol=1e-6)  # the one probability voter


@pytest.mark.parametrize("params, match", [
    ({"members": []}, "non-empty"),
    ({"members": "zoo:fair_tree"}, "non-empty list"),
    ({"members": ["zoo:fair_tree"], "max_disagreement": 1.0}, "share"),
    ({"members": ["zoo:fair_tree"], "on_disagreement": "ignore"}, "abstain or flag"),
    ({"members": ["zoo:mnist_cnn_nonexistent"]}, "zoo"),
    ({"members": [3]}, "spec string"),
])
def test_bad_settings_are_refused_in_check(fair, params, match):
    with pytest.raises(UsageError, match=match):
        Ensemble(**params).check(fair[0])


def test_a_member_of_another_shape_is_refused(fair):
    with pytest.raises(UsageError, match="shaped|shape"):
        Ensemble(members=["zoo:digits_mlp_overfit"]).check(fair[0])


def test_a_member_that_does_not_answer_fails_the_request_instead_of_passing_it(fair):
    import socket
    import time

    from redline.errors import TargetError

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model, x = fair
    ensemble = Ensemble(members=[f"http://127.0.0.1:{port}/predict"])
    defended = DefendedTarget(model, [ensemble])
    start = time.monotonic()
    with pytest.raises(TargetError):
        defended.predict(x[:3])
    assert time.monotonic() - start < 5  # no back-off while a client waits
