from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.svm import SVC

from redline.errors import BudgetExceeded, TargetError, UnsafeModelError
from redline.targets import InputSpec
from redline.targets.sklearn import SklearnTarget, load_skops

SPEC = InputSpec(shape=(6,), dtype="float64", lower=-6.0, upper=6.0)


def fit(model, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


class CountingLR(LogisticRegression):
    """Counts the rows predict_proba sees, to check the ledger against the model."""

    rows_seen = 0

    def predict_proba(self, x):
        CountingLR.rows_seen += len(x)
        return super().predict_proba(x)


def add_one(x):  # a user function: skops cannot know it is harmless
    return x + 1


MIRRORED = {
    "binary-logreg": lambda: LogisticRegression(max_iter=500),
    "multinomial-logreg": lambda: LogisticRegression(max_iter=500, C=0.5),
    "mlp-relu": lambda: MLPClassifier((8,), activation="relu", max_iter=300, random_state=0),
    "mlp-tanh": lambda: MLPClassifier((8, 4), activation="tanh", max_iter=300, random_state=0),
    "mlp-logistic": lambda: MLPClassifier((5,), activation="logistic", max_iter=300, random_state=0),
    "mlp-identity": lambda: MLPClassifier((5,), activation="identity", max_iter=300, random_state=0),
    "binary-mlp": lambda: MLPClassifier((5,), max_iter=300, random_state=0),
    "scaled-logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
    "minmax-mlp": lambda: make_pipeline(MinMaxScaler(), MLPClassifier((6,), max_iter=300, random_state=0)),
}


@pytest.mark.parametrize("name", sorted(MIRRORED))
def test_mirror_matches_predict_proba_and_gives_gradients(name, tabular):
    x, y = tabular
    if name.startswith("binary"):
        y = (y > 0).astype(int)
    model = fit(MIRRORED[name](), x, y)
    target = SklearnTarget(model, input_spec=SPEC)

    assert target.capabilities.gradients and target.whitebox_reason is None
    xt = torch.tensor(x[:50], requires_grad=True)
    log_p = target.logits(xt)
    np.testing.assert_allclose(torch.exp(log_p).detach().numpy(), model.predict_proba(x[:50]), atol=1e-9)
    log_p[:, 0].sum().backward()
    assert xt.grad is not None and float(xt.grad.abs().sum()) > 0
    assert target.ledger.total == 50

    # float32 batches (what most attacks send) give the same answer to float32 precision
    log_p32 = target.logits(torch.tensor(x[:5], dtype=torch.float32))
    assert log_p32.dtype == torch.float32
    np.testing.assert_allclose(torch.exp(log_p32).detach().numpy(), model.predict_proba(x[:5]), atol=1e-5)


def test_models_without_a_mirror_are_black_box(tabular):
    x, y = tabular
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    target = SklearnTarget(forest, input_spec=SPEC)
    assert not target.capabilities.gradients
    assert "RandomForestClassifier" in target.whitebox_reason
    with pytest.raises(TargetError, match="gradients"):
        target.logits(torch.zeros(1, 6))
    np.testing.assert_allclose(target.predict(x[:7]), forest.predict_proba(x[:7]))


def test_estimator_without_predict_proba_answers_labels(tabular):
    x, y = tabular
    svc = SVC().fit(x, y)
    target = SklearnTarget(svc, input_spec=SPEC)
    assert target.capabilities.outputs == "labels" and not target.capabilities.gradients
    np.testing.assert_array_equal(target.predict(x[:9]), svc.predict(x[:9]))


def test_labels_mode_uses_predict(tabular):
    x, y = tabular
    lr = LogisticRegression(max_iter=500).fit(x, y)
    target = SklearnTarget(lr, input_spec=SPEC, outputs="labels")
    out = target.predict(x[:11])
    assert out.dtype == np.int64 and out.shape == (11,)
    np.testing.assert_array_equal(out, lr.predict(x[:11]))
    assert target.whitebox_reason == "the target answers labels only"


def test_missing_class_still_gets_its_column(tabular):
    x, y = tabular
    keep = y != 1  # classes 0 and 2 only
    lr = LogisticRegression(max_iter=500).fit(x[keep], y[keep])
    target = SklearnTarget(lr, input_spec=SPEC, n_classes=3)
    p = target.predict(x[:10])
    assert p.shape == (10, 3)
    np.testing.assert_array_equal(p[:, 1], 0.0)
    np.testing.assert_allclose(p[:, [0, 2]], lr.predict_proba(x[:10]))
    assert not target.capabilities.gradients  # columns no longer match the mirror's


def test_string_classes_are_numbered_in_order(tabular):
    x, y = tabular
    names = np.array(["cat", "dog", "emu"])[y]
    lr = LogisticRegression(max_iter=500).fit(x, names)
    target = SklearnTarget(lr, input_spec=SPEC, outputs="labels")
    assert target.n_classes == 3
    np.testing.assert_array_equal(target.predict(x[:20]), np.searchsorted(lr.classes_, lr.predict(x[:20])))


def test_inputs_are_flattened_for_the_estimator(tabular):
    x, y = tabular
    lr = LogisticRegression(max_iter=500).fit(x, y)
    target = SklearnTarget(lr, input_spec=InputSpec(shape=(2, 3), dtype="float64"))
    np.testing.assert_allclose(target.predict(x[:4].reshape(4, 2, 3)), lr.predict_proba(x[:4]))
    with pytest.raises(TargetError, match="shape"):
        target.predict(x[:4])


def test_feature_count_mismatch_is_refused(tabular):
    x, y = tabular
    lr = LogisticRegression(max_iter=500).fit(x, y)
    with pytest.raises(TargetError, match="takes 6 features"):
        SklearnTarget(lr, input_spec=InputSpec(shape=(4,)))


def test_unfitted_estimator_is_refused():
    with pytest.raises(TargetError, match="not a fitted classifier"):
        SklearnTarget(LogisticRegression(), input_spec=SPEC)


def test_ledger_counts_exact_rows_and_budget_stops_before_the_model(tabular):
    x, y = tabular
    CountingLR.rows_seen = 0
    target = SklearnTarget(CountingLR(max_iter=500).fit(x, y), input_spec=SPEC)
    target.max_batch = 16
    target.ledger.budget = 40
    target.predict(x[:37])
    assert target.ledger.attack == 37 == CountingLR.rows_seen
    with pytest.raises(BudgetExceeded):
        target.predict(x[:4])
    assert CountingLR.rows_seen == 37  # the refused batch never reached the model
    with target.ledger.evaluating():
        target.predict(x[:100])
    assert (target.ledger.attack, target.ledger.evaluation) == (37, 100)
    assert CountingLR.rows_seen == 137


def test_default_trainer_refits_a_clone_with_the_seed(tabular):
    x, y = tabular
    mlp = fit(MLPClassifier((6,), max_iter=50, random_state=123), x, y)
    target = SklearnTarget(mlp, input_spec=SPEC)
    assert target.capabilities.trainable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = target.retrain(x[:120], y[:120], seed=7)
        b = target.retrain(x[:120], y[:120], seed=7)
        c = target.retrain(x[:120], y[:120], seed=8)
    assert a.estimator is not mlp and a.estimator.random_state == 7
    np.testing.assert_allclose(a.predict(x[120:140]), b.predict(x[120:140]))
    assert not np.allclose(a.predict(x[120:140]), c.predict(x[120:140]))
    assert a.capabilities.gradients and a.capabilities.trainable
    assert mlp.random_state == 123  # the original is untouched


def test_custom_trainer_is_kept(tabular):
    x, y = tabular
    calls = []

    def trainer(xs, ys, seed):
        calls.append(seed)
        return SklearnTarget(LogisticRegression().fit(xs, ys), input_spec=SPEC)

    target = SklearnTarget(LogisticRegression().fit(x, y), input_spec=SPEC, trainer=trainer)
    target.retrain(x, y, 3)
    assert calls == [3]


def test_skops_round_trip_with_allowlisted_types(tmp_path, tabular):
    import skops.io as sio

    x, y = tabular
    mlp = fit(MLPClassifier((5,), max_iter=50, random_state=0), x, y)  # its Adam state is allowlisted
    path = tmp_path / "mlp.skops"
    sio.dump(mlp, path)
    target = load_skops(path)
    assert target.spec == f"sklearn:{path}"
    assert target.input_spec.shape == (6,)
    np.testing.assert_allclose(target.predict(x[:5]), mlp.predict_proba(x[:5]))
    assert target.capabilities.gradients


def test_skops_with_untrusted_types_is_refused(tmp_path, tabular):
    import skops.io as sio

    x, y = tabular
    model = make_pipeline(FunctionTransformer(add_one), LogisticRegression(max_iter=500)).fit(x, y)
    path = tmp_path / "custom.skops"
    sio.dump(model, path)
    with pytest.raises(UnsafeModelError, match="add_one"):
        load_skops(path)


def test_skops_loader_refuses_non_skops_files(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(b"\x80\x04\x95" + b"\x00" * 20)  # a pickle in disguise
    with pytest.raises(UnsafeModelError, match="pickle"):
        load_skops(path)
