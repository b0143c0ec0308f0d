"""scikit-learn models against the data they are scanned with: labels numbered off by one,
models fitted without a class, regressors saved as skops files, multi-output models, and
checks that read true labels validating them like the others."""

from __future__ import annotations

import inspect
import re
import warnings

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from redline.data.base import Dataset
from redline.errors import TargetError, UsageError
from redline.findings import Status
from redline.targets import InputSpec, load_target
from redline.targets.config import TargetConfig
from redline.targets.regression import SklearnRegressorTarget
from redline.targets.sklearn import SklearnTarget, load_skops


def fit(model, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


@pytest.fixture
def binary():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=200)
    x = rng.normal(size=(200, 5)) + 2.0 * y[:, None]
    return x, y


def data(x, y, **kw):
    half = len(x) // 2
    return Dataset("d", x_train=x[:half], y_train=y[:half], x_test=x[half:], y_test=y[half:], **kw)


def dump(tmp_path, model, name="m.skops"):
    import skops.io as sio

    path = tmp_path / name
    sio.dump(model, path)
    return path


# -- labels against the model's classes ------------------------------------------------------


def test_labels_numbered_from_one_are_refused_for_a_skops_file(tmp_path, binary):
    x, y = binary
    path = dump(tmp_path, fit(LogisticRegression(), x, y))
    target = load_target(f"sklearn:{path}", data=data(x, y + 1))
    text = target.label_mismatch
    assert "\n" not in text and target.n_classes == 2  # not widened to the mis-numbered labels
    assert "labels are {1, 2}" in text and "classes are {0, 1}" in text and "numbered from 1" in text
    # Every check that reads labels ends with it; one that reads none still applies.
    from redline.checks import get_check

    labelled = get_check("FM14.shift_sensitivity")()(target, data(x, y + 1), budget=500)
    assert labelled.status == Status.ERROR and "numbered from 1" in labelled.reason
    fuzz = get_check("FM11.fuzz")()(target, data(x, y + 1), budget=500)
    assert fuzz.status != Status.ERROR, fuzz.reason


def test_labels_numbered_from_one_are_refused_for_an_estimator(binary):
    x, y = binary
    lr = fit(make_pipeline(StandardScaler(), LogisticRegression()), x, y)
    assert "numbered from 1" in load_target(lr, data=data(x, y + 1)).label_mismatch
    target = load_target(lr, data=data(x, y))
    assert target.label_mismatch is None  # the right numbering still loads, white-box
    assert target.n_classes == 2 and target.capabilities.gradients


def test_a_model_fitted_without_a_class_is_widened_to_the_data(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, size=300)
    x = rng.normal(size=(300, 5)) + y[:, None]
    seen = y != 2
    model = fit(LogisticRegression(max_iter=500), x[seen], y[seen])  # classes_ [0, 1, 3]
    for source in (model, f"sklearn:{dump(tmp_path, model)}"):
        target = load_target(source, data=data(x, y))
        assert target.n_classes == 4
        assert np.all(target.predict(x[:10])[:, 2] == 0)


def test_a_model_with_classes_one_to_k_takes_labels_one_to_k_only(binary):
    x, y = binary
    model = fit(LogisticRegression(), x, y + 1)  # classes_ [1, 2]: columns 1 and 2
    target = load_target(model, data=data(x, y + 1))
    assert isinstance(target, SklearnTarget) and target.n_classes == 3
    assert "numbered from 0 where the model's classes start at 1" in load_target(model, data=data(x, y)).label_mismatch


def test_string_classes_take_labels_encoded_in_their_order(binary):
    x, y = binary
    model = fit(LogisticRegression(), x, np.where(y == 1, "benign", "malignant"))
    target = load_target(model, data=data(x, 1 - y, class_names=["benign", "malignant"]))
    assert target.n_classes == 2


def test_a_stated_n_classes_settles_the_count(binary):
    x, y = binary
    model = fit(LogisticRegression(), x, y)
    target = load_target(model, data=data(x, y + 1), config=TargetConfig(n_classes=3))
    assert target.n_classes == 3


def test_labels_that_are_not_class_indices_are_left_to_the_checks(binary):
    x, y = binary
    model = fit(LogisticRegression(), x, y)
    target = load_target(model, data=data(x, np.where(y == 1, 1, -1)))  # -1/+1: the checks refuse it
    assert target.n_classes == 2


# -- regressors --------------------------------------------------------------------------------


@pytest.fixture
def regression():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4))
    return x, np.round(x @ np.array([3.0, -2.0, 1.0, 0.5]) * 10 + 100)


def test_a_regressor_skops_file_loads_as_a_regressor(tmp_path, regression):
    x, y = regression
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(x, y)
    path = dump(tmp_path, model)
    assert isinstance(load_skops(path), SklearnRegressorTarget)
    target = load_target(f"sklearn:{path}", data=data(x, y, task="regression"))
    assert isinstance(target, SklearnRegressorTarget)
    np.testing.assert_allclose(target.predict(x[:5]), model.predict(x[:5]))


def test_a_regressor_with_classification_data_is_refused_at_load(tmp_path, regression):
    x, y = regression
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(x, y)
    for source in (model, f"sklearn:{dump(tmp_path, model)}"):
        with pytest.raises(UsageError, match="is a regressor but the data set 'd' is for classification: say task"):
            load_target(source, data=data(x, y))


def test_a_classifier_with_regression_data_is_refused_at_load(binary):
    x, y = binary
    with pytest.raises(UsageError, match="is a classifier but the data set 'd' is for regression"):
        load_target(fit(LogisticRegression(), x, y), data=data(x, y.astype(float), task="regression"))


# -- multi-output models ---------------------------------------------------------------------------


def multi_output_models(x, y2):
    return [
        MultiOutputClassifier(LogisticRegression()).fit(x, y2),
        RandomForestClassifier(5, random_state=0).fit(x, y2),
        fit(MLPClassifier((4,), max_iter=30, random_state=0), x, y2),  # multi-label
        make_pipeline(StandardScaler(), RandomForestClassifier(5, random_state=0)).fit(x, y2),
    ]


def test_multi_output_classifiers_are_refused_at_load(tmp_path, binary):
    x, y = binary
    y2 = np.c_[y, (x[:, 0] > 0).astype(int)]
    spec = InputSpec(shape=(5,), dtype="float64")
    for model in multi_output_models(x, y2):
        with pytest.raises(TargetError, match="multi-output models are not supported") as err:
            SklearnTarget(model, input_spec=spec)
        assert "\n" not in str(err.value)
        with pytest.raises(TargetError, match="multi-output"):
            load_target(model, data=data(x, y))
    path = dump(tmp_path, MultiOutputClassifier(LogisticRegression()).fit(x, y2))
    with pytest.raises(TargetError, match=r"MultiOutputClassifier is a multi-output model \(2 outputs per row\)"):
        load_target(f"sklearn:{path}", data=data(x, y))


def test_multi_output_regressors_and_multi_label_one_vs_rest_are_counted():
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.neighbors import KNeighborsRegressor

    from redline.targets.sklearn import outputs_per_row

    rng = np.random.default_rng(0)
    x, y2 = rng.random((50, 3)), rng.random((50, 2))
    for make in (LinearRegression, Ridge, lambda: KNeighborsRegressor(3), lambda: PLSRegression(1)):
        assert outputs_per_row(make().fit(x, y2)) == 2
        assert outputs_per_row(make().fit(x, y2[:, 0])) == 1
        assert outputs_per_row(make_pipeline(StandardScaler(), make()).fit(x, y2)) == 2
    labels = (rng.random((50, 3)) > 0.5).astype(int)
    assert outputs_per_row(OneVsRestClassifier(LogisticRegression()).fit(x, labels)) == 3
    # A multi-class logistic regression keeps a row of coefficients per class: one output all the same.
    assert outputs_per_row(LogisticRegression().fit(x, (x[:, 0] * 3).astype(int))) == 1


def test_single_output_models_are_not_taken_for_multi_output(binary):
    x, y = binary
    y3 = np.where(x[:, 1] > 0.5, 2, y)
    spec = InputSpec(shape=(5,), dtype="float64")
    for model in (fit(MLPClassifier((4,), max_iter=30, random_state=0), x, y3),
                  fit(MLPClassifier((4,), max_iter=30, random_state=0), x, y),
                  RandomForestClassifier(5, random_state=0).fit(x, y3)):
        assert SklearnTarget(model, input_spec=spec).n_classes in (2, 3)


# -- checks that read true labels validate them ---------------------------------------------------


@pytest.mark.parametrize("check_id", ["FM14.shift_sensitivity", "FM17.test_adequacy", "FM17.operating_conditions",
                                      "FM15.natural_adversarial"])
def test_checks_reading_true_labels_refuse_negative_labels_and_take_a_class_the_model_lacks(binary, check_id):
    from redline.checks import get_check

    x, y = binary
    target = SklearnTarget(fit(LogisticRegression(), x, y), input_spec=InputSpec(shape=(5,), dtype="float64"))
    check = get_check(check_id)()
    assert check.needs.labels and not check.needs.labels_from_target
    finding = check(target, data(x, y - 1), budget=500)  # a Target given as is: not checked at load
    assert finding.status == Status.ERROR
    assert "labels of 'd' run from -1 to 0" in finding.reason
    # A class the model cannot answer (a third class in the test rows) is rows it gets wrong, not
    # a numbering fault: FM17.test_adequacy measures exactly that.
    third = np.where(np.arange(len(y)) % 10 == 0, 2, y)
    finding = check(target, data(x, third), budget=500)
    assert finding.status != Status.ERROR or "labels of 'd'" not in finding.reason, finding.reason


def test_checks_needing_true_labels_do_not_ask_the_target(binary):
    from redline.checks import get_check

    x, y = binary
    target = SklearnTarget(fit(LogisticRegression(), x, y), input_spec=InputSpec(shape=(5,), dtype="float64"))
    unlabelled = Dataset("d", x_train=x[:100], y_train=y[:100], x_test=x[100:])
    finding = get_check("FM14.shift_sensitivity")()(target, unlabelled, budget=500)
    assert finding.status == Status.NOT_APPLICABLE and "true labels" in finding.reason
    assert finding.evaluation_queries == 0


def test_a_check_that_declares_no_labels_reads_none():
    """``labels=False`` skips the label validation: only for checks that never read a y."""
    from redline.checks import all_checks

    reads_labels = re.compile(r"\by_(train|test|pool|deploy)\b|data\.y\(|\bdata\.labels\b")
    for check_id, cls in all_checks().items():
        if cls.needs.labels:
            continue
        source = inspect.getsource(inspect.getmodule(cls))
        assert not reads_labels.search(source), f"{check_id} declares labels=False but reads labels"
