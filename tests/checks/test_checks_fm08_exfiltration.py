import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.fm08_exfiltration import (
    ParameterExfiltration,
    parameter_arrays,
    parameter_statistics,
    parameter_vector,
)
from redline.findings import Status
from redline.targets.base import LabelOnlyTarget
from redline.util import exfiltration as ex


@pytest.fixture(scope="module")
def digits():
    return zoo.load_data_for("digits_mlp_overfit")


@pytest.mark.parametrize(
    "name,encoding,min_ssim",
    [("digits_mlp_malicious_lsb", "lsb", 0.99), ("digits_mlp_malicious_corr", "correlation", 0.6),
     ("digits_mlp_malicious_sign", "sign", 0.7)],
)
def test_malicious_models_are_flagged_and_their_training_images_recovered(digits, tmp_path, name, encoding, min_ssim):
    finding = ParameterExfiltration()(zoo.load_target(name), digits, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert encoding in m["flagged_encodings"]
    assert m["recovered_images"] >= 100 and m["recovered_ssim"] >= min_ssim
    assert finding.queries == 0
    saved = np.load(tmp_path / finding.evidence["examples"])
    truth = digits.x_train[saved["train_index"]]
    assert np.abs(saved["recovered"] - truth).mean() == pytest.approx(m["recovered_mae"])
    assert all((tmp_path / p).exists() for p in finding.evidence["plots"])


@pytest.mark.parametrize("name", ["digits_mlp_overfit", "digits_mlp_regularized"])
def test_honestly_trained_models_pass(digits, name):
    finding = ParameterExfiltration()(zoo.load_target(name), digits)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    m = finding.metrics
    assert m["flagged_encodings"] == [] and m["recovered_images"] == 0
    assert m["lsb_entropy"] > 7.9 and m["lsb_p_value"] > 1e-3


def test_lsb_payload_off_the_decoders_grid_is_caught_by_the_serial_test(digits):
    target = zoo.load_target("digits_mlp_overfit")
    params = np.concatenate(parameter_arrays(target))
    assert params.dtype == np.float32
    # Shift the payload by 5 values: chunks no longer line up with images.
    params[5:] = ex.lsb_embed(params[5:], digits.x_train, bits=8)
    stats = parameter_statistics([params])
    assert stats["lsb_p_value"] < 1e-6 and stats["lsb_serial_correlation"] > 0.2
    assert stats["lsb_entropy"] < 6


def test_scikit_learn_parameters_are_read_and_a_clean_model_passes(digits):
    from sklearn.linear_model import LogisticRegression

    from redline.targets.sklearn import SklearnTarget

    x = digits.x_train.reshape(len(digits.x_train), -1)
    est = LogisticRegression(max_iter=300).fit(x, digits.y_train)
    target = SklearnTarget(est, input_spec=zoo.load_target("digits_mlp_overfit").input_spec, n_classes=10)
    assert parameter_vector(target).size == est.coef_.size + est.intercept_.size
    assert ParameterExfiltration()(target, digits).status is Status.NOT_VULNERABLE
    # The same estimator with pixels stamped into the low bits of its weights is caught.
    est.coef_ = ex.lsb_embed(est.coef_, digits.x_train, bits=8)
    finding = ParameterExfiltration()(target, digits)
    assert finding.status is Status.VULNERABLE and "lsb" in finding.metrics["flagged_encodings"]


def test_without_parameters_or_image_data_the_check_does_not_apply(digits):
    hidden = ParameterExfiltration()(LabelOnlyTarget(zoo.load_target("digits_mlp_overfit")), digits)
    assert hidden.status is Status.NOT_APPLICABLE and "parameters" in hidden.reason
    bad = ParameterExfiltration(match_correlation=1.5)(zoo.load_target("digits_mlp_overfit"), digits)
    assert bad.status is Status.ERROR
