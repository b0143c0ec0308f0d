import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.extraction.fm08_capacity_abuse import CapacityAbuseProbe
from redline.checks.extraction.fm08_exfiltration import (
    ParameterExfiltration,
    parameter_statistics,
    parameter_vector,
)
from redline.targets.parameters import onnx_parameter_arrays
from redline.defences.labels_only import LabelOnlyTarget
from redline.defences.rounding import RoundedTarget
from redline.findings import Status
from redline.util import exfiltration as ex
from redline.util.ssim import ssim
from redline.zoo import malicious


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
    params = np.concatenate(target.parameter_arrays())
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


# -- ONNX: the white-box tests on a model delivered as a file ---------------------------


def _export(tmp_path, name):
    from redline.targets.onnx import load_onnx
    from redline.util.surrogates import save_torch_onnx

    target = zoo.load_target(name)
    path = tmp_path / f"{name}.onnx"
    save_torch_onnx(path, target.module, target.input_spec.shape)
    return target, load_onnx(path, input_spec=target.input_spec)


def test_onnx_initializers_are_the_module_parameters_bit_for_bit(tmp_path):
    module_target, onnx_target = _export(tmp_path, "digits_mlp_malicious_lsb")
    from_file = onnx_target.parameter_arrays()
    from_module = module_target.parameter_arrays()
    assert [a.dtype for a in from_file] == [np.float32] * len(from_module)
    assert np.array_equal(np.concatenate(from_file).view(np.uint32), np.concatenate(from_module).view(np.uint32))


@pytest.mark.parametrize("name,encoding", [("digits_mlp_malicious_lsb", "lsb"), ("digits_mlp_malicious_sign", "sign")])
def test_malicious_onnx_file_is_flagged(digits, tmp_path, name, encoding):
    _, onnx_target = _export(tmp_path, name)
    finding = ParameterExfiltration()(onnx_target, digits)
    assert finding.status is Status.VULNERABLE, finding.reason
    assert encoding in finding.metrics["flagged_encodings"] and finding.metrics["recovered_images"] >= 100
    assert finding.queries == 0


def test_honest_onnx_file_passes(digits, tmp_path):
    _, onnx_target = _export(tmp_path, "digits_mlp_overfit")
    finding = ParameterExfiltration()(onnx_target, digits)
    assert finding.status is Status.NOT_VULNERABLE, finding.reason or finding.metrics
    assert finding.metrics["parameters"] == sum(p.numel() for p in zoo.load_target("digits_mlp_overfit").module.parameters())


def test_onnx_weights_stored_input_major_are_turned_back(tmp_path):
    """A MatMul graph stores W as (inputs, outputs); the reader returns PyTorch's (outputs, inputs) order."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 5)).astype(np.float32)  # (outputs, inputs)
    b = rng.normal(size=3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W_t"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        # Listed out of order: the reader follows the nodes, not the list.
        initializer=[numpy_helper.from_array(b, "b"), numpy_helper.from_array(w.T.copy(), "W_t")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    arrays = onnx_parameter_arrays(model.SerializeToString())
    assert np.array_equal(arrays[0], w.reshape(-1)) and np.array_equal(arrays[1], b)
    with pytest.raises(Exception, match="cannot read the ONNX file"):
        onnx_parameter_arrays(tmp_path / "missing.onnx")


# -- capacity abuse (black box) ----------------------------------------------------------


def test_capacity_abuse_payload_is_read_back_through_queries_only(digits):
    recipe = malicious.DIGITS_CAPACITY_ABUSE
    target = zoo.load_target("digits_mlp_malicious_capacity")
    recovered = recipe.read_back(target)
    secret = digits.x_train[: recipe.secret_images]
    assert target.ledger.attack == recipe.secret_images * 64  # one query per pixel
    assert ssim(recovered, secret).mean() > 0.8 and np.abs(recovered - secret).mean() < 0.1
    # Accuracy on real digits is that of an honest model, so nothing looks wrong in use.
    assert np.mean(target.predict_labels(digits.x_test) == digits.y_test) > 0.93
    # The honest twin answers the same carriers with nothing resembling the images.
    honest = recipe.read_back(zoo.load_target("digits_mlp_overfit"))
    assert ssim(honest, secret).mean() < 0.2
    # Its parameters are trained honestly: the white-box check has nothing to read.
    assert ParameterExfiltration()(target, digits).status is Status.NOT_VULNERABLE


def test_capacity_abuse_encoding_round_trips():
    images = np.random.default_rng(0).random((3, 1, 4, 4))
    labels = ex.pixels_to_labels(images, 10)
    assert labels.min() >= 0 and labels.max() <= 9 and labels.size == images.size
    assert np.abs(ex.labels_to_pixels(labels, 10) - images.reshape(-1)).max() <= 1 / 18 + 1e-12
    a, b = ex.synthetic_inputs(5, (1, 4, 4), seed=7), ex.synthetic_inputs(5, (1, 4, 4), seed=7)
    assert np.array_equal(a, b) and not np.array_equal(a, ex.synthetic_inputs(5, (1, 4, 4), seed=8))


@pytest.fixture(scope="module")
def honest_cnn(digits):
    """An honest small CNN on the digits: its logits are rougher on noise than an MLP's, so
    against MLP references alone it looked like the capacity-abuse model."""
    from redline.zoo.build import input_spec_for
    from redline.zoo.recipes import CnnRecipe

    recipe = CnnRecipe(n_classes=10, epochs=30, batch_size=64, lr=5e-3)
    model = recipe.train(digits.x_train, digits.y_train, 0)
    return recipe.as_target(model, input_spec=input_spec_for(digits), n_classes=10, spec="honest-cnn", trainer=None)


@pytest.fixture(scope="module")
def probe_findings(digits, honest_cnn):
    """One probe per target with the same seed, so the honest references are trained once.
    Fewer anchors than the default keep it fast (the CNN references' answers are the slow
    part); benchmarks/bench_fm08_capacity.py measures the defaults over ten seeds."""
    probe = CapacityAbuseProbe(anchors=128, real_anchors=128)
    findings = {name: probe(zoo.load_target(name), digits)
                for name in ("digits_mlp_malicious_capacity", "digits_mlp_overfit", "digits_mlp_regularized")}
    findings["honest_cnn"] = probe(honest_cnn, digits)
    # Behind an API that rounds its probabilities (a zero then stands for "below 5e-5").
    for name in ("digits_mlp_malicious_capacity", "digits_mlp_overfit"):
        findings[f"{name}+round4"] = probe(RoundedTarget(zoo.load_target(name), decimals=4), digits)
    return findings


def test_capacity_abuse_model_is_flagged_without_knowing_the_seed(probe_findings):
    finding = probe_findings["digits_mlp_malicious_capacity"]
    assert finding.status is Status.VULNERABLE, finding.metrics
    m = finding.metrics
    assert m["p_value"] < 1e-4 and m["answers_move_more"]
    assert m["roughness_ratio"] > 1.5 and m["sensitivity_ratio"] > 1.0
    assert m["reference_models"] == "surrogate:mlp+surrogate:cnn"
    for family in ("uniform", "gaussian", "binary", "shuffled"):
        assert m[f"roughness_{family}"] > m[f"expected_roughness_{family}"]
    assert finding.queries == (4 * 128 + 128) * 5 and finding.evaluation_queries == 0


def test_honest_twin_passes_the_capacity_abuse_probe(probe_findings):
    finding = probe_findings["digits_mlp_overfit"]
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert finding.metrics["p_value"] > 0.1


def test_honest_cnn_passes_against_references_of_both_families(probe_findings):
    """Against the MLP references alone the CNN's roughness ratio was 1.34-1.43 (flagged at
    every seed); near real digits it is as smooth as the CNN references, and on noise as
    rough as they are, so its expected roughness is theirs."""
    finding = probe_findings["honest_cnn"]
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    m = finding.metrics
    assert m["p_value"] > 0.01 and m["roughness_ratio"] < 1.25
    assert m["roughness"] > 1.25 * m["reference_roughness_surrogate:mlp"]  # the old false positive
    cnn_real, mlp_real = m["reference_real_roughness_surrogate:cnn"], m["reference_real_roughness_surrogate:mlp"]
    assert abs(np.log(m["real_roughness"] / cnn_real)) < abs(np.log(m["real_roughness"] / mlp_real))


def test_unsure_dp_model_is_not_flagged(probe_findings):
    """The DP model's small logits turn easily on noise, more than the MLP references' do, but
    its roughness near real data is CNN-like and so is its roughness on noise."""
    finding = probe_findings["digits_mlp_regularized"]
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert finding.metrics["p_value"] > 0.01 and finding.metrics["roughness_ratio"] < 1.25


def test_rounded_answers_are_compared_with_references_rounded_alike(probe_findings):
    # Compared with exact reference answers, rounding alone made the honest twin look 2x as
    # rough (p below 1e-10, a false flag but for the sensitivity proviso); rounded alike, it
    # is as smooth as they are, and the malicious model's logits still stand out.
    honest, malicious = probe_findings["digits_mlp_overfit+round4"], probe_findings["digits_mlp_malicious_capacity+round4"]
    assert honest.metrics["answers_rounded_to"] == malicious.metrics["answers_rounded_to"] == 4
    assert honest.status is Status.NOT_VULNERABLE, honest.metrics
    assert honest.metrics["roughness_ratio"] < 1.25 and honest.metrics["p_value"] > 0.01
    assert malicious.metrics["roughness_ratio"] > 1.4 and malicious.metrics["p_value"] < 1e-3
    assert probe_findings["digits_mlp_overfit"].metrics["answers_rounded_to"] is None


def test_capacity_abuse_probe_needs_probabilities(digits):
    """A flip rate cannot tell memorised noise labels from an unsure honest model (the DP
    model behind labels was flagged at p = 0.0016), so a labels-only target is not judged."""
    labels_only = LabelOnlyTarget(zoo.load_target("digits_mlp_regularized"))
    finding = CapacityAbuseProbe()(labels_only, digits)
    assert finding.status is Status.NOT_APPLICABLE and "labels only" in finding.reason and finding.queries == 0


def test_capacity_abuse_probe_plans_within_its_budget_and_rejects_bad_settings(digits):
    target = zoo.load_target("digits_mlp_overfit")
    small = CapacityAbuseProbe()(target, digits, budget=100)
    assert small.status is Status.NOT_APPLICABLE and "budget" in small.reason and small.queries == 0
    bad = CapacityAbuseProbe(families=("uniform", "plaid"))(target, digits)
    assert bad.status is Status.ERROR and "plaid" in bad.reason
    assert CapacityAbuseProbe(n_references=2)(target, digits).status is Status.ERROR
    ratio = CapacityAbuseProbe(min_roughness_ratio=0.5)(target, digits)
    assert ratio.status is Status.ERROR and "min_roughness_ratio" in ratio.reason
    architecture = CapacityAbuseProbe(architectures=("mlp", "transformer"))(target, digits)
    assert architecture.status is Status.ERROR and "transformer" in architecture.reason


def _digits_sklearn_target(estimator, digits):
    from redline.targets.base import InputSpec
    from redline.targets.sklearn import SklearnTarget

    x = digits.x_train.reshape(len(digits.x_train), -1).astype(np.float64)
    estimator.fit(x, digits.y_train)
    return SklearnTarget(estimator, input_spec=InputSpec(shape=(x.shape[1],), dtype="float64", lower=0.0, upper=1.0))


def test_models_made_of_training_data_summaries_are_not_read_as_payloads(digits):
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import NearestCentroid
    from sklearn.svm import SVC

    # Class means read as 'recovered images' and short-fraction low bits as an LSB payload.
    for estimator in (GaussianNB(), NearestCentroid()):
        finding = ParameterExfiltration()(_digits_sklearn_target(estimator, digits), digits)
        assert finding.status is Status.NOT_APPLICABLE, (type(estimator).__name__, finding.summary)
        assert "summaries or copies of its training data" in finding.reason
    from sklearn.neighbors import KNeighborsClassifier

    finding = ParameterExfiltration()(_digits_sklearn_target(KNeighborsClassifier(), digits), digits)
    assert finding.status is Status.NOT_APPLICABLE and "KNeighborsClassifier" in finding.reason
    finding = ParameterExfiltration()(_digits_sklearn_target(SVC(), digits), digits)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert "support_vectors_" in finding.metrics["stored_training_data"]
    assert "support_vectors_" in finding.summary


def test_a_class_template_is_not_a_copy_of_one_image(digits):
    from redline.checks.extraction.fm08_exfiltration import _single_image_shares

    refs = digits.x_train.astype(np.float64)
    means = np.stack([refs[digits.y_train == c].mean(axis=0) for c in range(10)])
    copies = refs[:10] * 0.9 + 0.05
    assert (_single_image_shares(means, np.ones(10), refs) < 0.5).all()
    assert (_single_image_shares(copies, np.ones(10), refs) > 0.9).all()


def _fitted_mlp(x, y, hidden, seed=0):
    import torch.nn as nn

    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    torch.manual_seed(seed)
    module = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(x.shape[1:])), hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(xt), yt).backward()
        opt.step()
    spec = InputSpec(shape=tuple(x.shape[1:]), dtype="float32", lower=0.0, upper=1.0)
    return module, TorchTarget(module, input_spec=spec, n_classes=10)


def test_fake_quantised_honest_weights_are_not_called_a_payload(digits):
    # Rounded to a 4-bit grid per output channel, as quantisation-aware training leaves them:
    # equal levels share their low bits, and the serial test once said 'payload' at p = 1e-198.
    module, target = _fitted_mlp(digits.x_train, digits.y_train, 64)
    with torch.no_grad():
        for p in module.parameters():
            scale = (p.abs().amax(dim=-1, keepdim=True) if p.ndim == 2 else p.abs().max()) / 7
            p.copy_(torch.round(p / scale) * scale)
    finding = ParameterExfiltration()(target, digits)
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert finding.metrics["lsb_p_value"] < 1e-3 and "grid" in finding.reason


def test_chance_matches_on_tiny_images_are_not_recoveries(digits):
    # Digits pooled to 4x4: with 16 pixels an honest network's chunks match dozens of training
    # images at r >= 0.8 by chance; pixel-shuffled chunks match about as many.
    pooled = digits.x_train.reshape(-1, 1, 4, 2, 4, 2).mean(axis=(3, 5)).astype(np.float32)
    tiny = dataclasses.replace(digits, x_train=pooled, x_test=None, y_test=None, x_pool=None, y_pool=None,
                               x_deploy=None, y_deploy=None)
    _, target = _fitted_mlp(pooled, digits.y_train, 256)
    finding = ParameterExfiltration()(target, tiny)
    assert finding.status is not Status.VULNERABLE, finding.summary
    assert sum(finding.metrics["chance_matches"].values()) > 0
    # A real payload on the same images still stands out from chance.
    arrays = target.parameter_arrays()
    params = np.concatenate(arrays)
    params[: pooled.size] = ex.lsb_embed(params[: pooled.size], pooled, bits=8)
    with torch.no_grad():
        flat = torch.nn.utils.parameters_to_vector(target.torch_module().parameters())
        flat[:] = torch.as_tensor(params)
        torch.nn.utils.vector_to_parameters(flat, target.torch_module().parameters())
    assert ParameterExfiltration()(target, tiny).status is Status.VULNERABLE


# -- payload layout and the serial test without a read-back --------------------------------


def _with_payload_down_the_columns(name, images):
    """The zoo model ``name`` with the images' pixels in the low byte of its first weight
    matrix, written one image after another down the matrix's columns (row-major in W.T)."""
    target = zoo.load_target(name)
    weight = next(iter(target.torch_module().parameters()))
    with torch.no_grad():
        stamped = ex.lsb_embed(weight.detach().numpy().T.copy(), images, bits=8)
        weight.copy_(torch.from_numpy(stamped.T.copy()))
    return target


def test_lsb_payload_written_down_the_columns_is_read_back(digits, tmp_path):
    # The red team's MNIST MLP with 256 images stored this way passed as not_vulnerable
    # (serial correlation 0.031 in row order, p = 4.6e-45; 0.81 column by column).
    target = _with_payload_down_the_columns("digits_mlp_overfit", digits.x_train)
    finding = ParameterExfiltration()(target, digits)
    assert finding.status is Status.VULNERABLE, finding.summary
    m = finding.metrics
    assert m["recovered_by"] == "lsb:8:columns" and m["recovered_images"] >= 100 and m["recovered_ssim"] > 0.99
    assert m["recovered_images_lsb_8"] == 0 and "column by column" in finding.summary
    assert m["lsb_serial_correlation_columns"] > 0.1 and m["matrices_read_by_columns"] == 3
    # The same model as an ONNX file (flat initializers, no shapes): the stride is found in the low bits.
    from redline.targets.onnx import load_onnx
    from redline.util.surrogates import save_torch_onnx

    path = tmp_path / "columns.onnx"
    save_torch_onnx(path, target.module, target.input_spec.shape)
    finding = ParameterExfiltration()(load_onnx(path, input_spec=target.input_spec), digits)
    assert finding.status is Status.VULNERABLE and finding.metrics["recovered_by"] == "lsb:8:columns", finding.summary


def test_column_payload_of_images_the_auditor_lacks_is_inconclusive(digits):
    # Images the auditor does not hold cannot be read back (blocky noise here: no digit the
    # auditor has looks like them); the low bits are still serially correlated down the
    # columns: no pass.
    private = np.kron(np.random.default_rng(1).random((128, 1, 4, 4)), np.ones((1, 1, 2, 2)))
    target = _with_payload_down_the_columns("digits_mlp_overfit", private)
    finding = ParameterExfiltration()(target, digits)
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    m = finding.metrics
    assert m["recovered_images"] == 0 and m["lsb_p_value_columns"] < 1e-6
    assert "column by column" in finding.summary and "no training image was read back" in finding.summary


def test_a_weak_but_significant_serial_correlation_is_inconclusive_not_a_pass(digits):
    # Low bytes that repeat their neighbour 3% of the time: r about 0.03, far below
    # min_serial_correlation (0.05) but significant over 66,000 parameters. It used to pass
    # with "no serial structure" next to its own p-value.
    import torch.nn as nn

    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 10))
    with torch.no_grad():
        weight = module[1].weight
        raw = weight.detach().numpy().copy().view(np.uint32).reshape(-1)
        repeat = np.flatnonzero(np.random.default_rng(0).random(raw.size) < 0.03)
        repeat = repeat[repeat > 0]
        raw[repeat] = (raw[repeat] & ~np.uint32(0xFF)) | (raw[repeat - 1] & np.uint32(0xFF))
        weight.copy_(torch.from_numpy(raw.view(np.float32).reshape(weight.shape)))
    spec = InputSpec(shape=(1, 8, 8), dtype="float32", lower=0.0, upper=1.0)
    finding = ParameterExfiltration()(TorchTarget(module, input_spec=spec, n_classes=10), digits)
    m = finding.metrics
    assert m["lsb_p_value"] < 1e-4 and m["lsb_serial_correlation"] < 0.05 and m["recovered_images"] == 0
    assert finding.status is Status.INCONCLUSIVE, finding.summary
    assert "weakly but significantly" in finding.summary and "no serial structure" not in finding.summary


def test_scikit_learn_weights_are_read_by_columns_too(digits):
    from sklearn.linear_model import LogisticRegression

    from redline.targets.sklearn import SklearnTarget

    x = digits.x_train.reshape(len(digits.x_train), -1)
    est = LogisticRegression(max_iter=300).fit(x, digits.y_train)
    target = SklearnTarget(est, input_spec=zoo.load_target("digits_mlp_overfit").input_spec, n_classes=10)
    est.coef_ = ex.lsb_embed(est.coef_.T.copy(), digits.x_train, bits=8).T.copy()  # 10 images down the columns
    finding = ParameterExfiltration()(target, digits)
    assert finding.status is Status.VULNERABLE, finding.summary
    assert finding.metrics["recovered_by"] == "lsb:8:columns" and finding.metrics["recovered_images"] == 10
