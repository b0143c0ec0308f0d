"""FM16.corruption: positive control (a plain model collapses under corruption), negative
controls (identity-like severities pass; a model trained with the corruptions as
augmentation has a lower mCE than the plain one), mCE against a named reference, the
image/tabular choice, and the heat map. The image path runs on a tiny local stand-in of the
image library (two families), so these tests do not depend on it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from redline.checks import all_checks
from redline.checks.base import CheckContext
from redline.checks.robustness import fm16_corruption
from redline.checks.robustness.fm16_corruption import CommonCorruption
from redline.data import load_data
from redline.findings import Status
from redline.targets import load_target

pytest.importorskip("sklearn")


@dataclasses.dataclass(frozen=True)
class StandIn:
    """The image library's interface: name, group, apply(images, severity, rng, low, high)."""

    name: str
    group: str
    sigma: tuple[float, ...]

    def apply(self, images, severity, rng, low, high):
        if self.group == "noise":
            out = images + rng.normal(0, self.sigma[severity - 1], images.shape)
        else:  # a 3x3 box blur mixed in by severity
            from scipy.ndimage import uniform_filter

            w = self.sigma[severity - 1]
            out = (1 - w) * images + w * uniform_filter(images, size=(1, 1, 3, 3), mode="nearest")
        return np.clip(out, low, high).astype(images.dtype)


STAND_IN = {
    "noise": StandIn("noise", "noise", (0.1, 0.25, 0.45, 0.7, 1.0)),
    "blur": StandIn("blur", "blur", (0.2, 0.4, 0.6, 0.8, 1.0)),
}
TINY = {"noise": StandIn("noise", "noise", (0.001,) * 5)}


@pytest.fixture
def image_library(monkeypatch):
    def families(kind):
        if kind == "image":
            return STAND_IN
        from redline.checks.robustness.corruptions import families as real

        return real(kind)

    monkeypatch.setattr(fm16_corruption, "corruption_families", families)
    return STAND_IN


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits")


def _logreg(x, y):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=3000).fit(x.reshape(len(x), -1), y)


@pytest.fixture(scope="module")
def plain(digits):
    return _logreg(digits.x_train, digits.y_train)


@pytest.fixture(scope="module")
def augmented(digits):
    """The same model trained on clean digits plus every stand-in corruption at every severity."""
    rng = np.random.default_rng(1)
    xs, ys = [digits.x_train], [digits.y_train]
    for c in STAND_IN.values():
        for s in range(1, 6):
            xs.append(c.apply(digits.x_train, s, rng, 0.0, 1.0))
            ys.append(digits.y_train)
    return _logreg(np.concatenate(xs), np.concatenate(ys))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, plain):
    skops_io = pytest.importorskip("skops.io")
    path = tmp_path_factory.mktemp("ref") / "plain.skops"
    skops_io.dump(plain, path)
    return str(path)


def test_registered_with_declared_metrics():
    assert all_checks()["FM16.corruption"] is CommonCorruption


def test_plain_image_model_is_flagged_and_the_heat_map_written(image_library, digits, plain, tmp_path):
    finding = CommonCorruption(n_inputs=200)(load_target(plain, data=digits), digits, budget=5_000, seed=0,
                                             ctx=CheckContext(tmp_path))
    m = finding.metrics
    assert finding.status is Status.VULNERABLE, finding.summary
    assert m["corruption_kind"] == "image" and set(m["corrupted_accuracy"]) == {"noise", "blur"}
    assert m["corrupted_accuracy"]["noise"][-1] < m["clean_accuracy"] - 0.4  # collapses under heavy noise
    # CE_f is the sum of the errors over severities; the mean error over all of them
    for family, accuracies in m["corrupted_accuracy"].items():
        assert m["corruption_error"][family] == pytest.approx(sum(1 - a for a in accuracies))
    assert m["mean_corruption_error"] == pytest.approx(1 - m["mean_transformed_accuracy"])
    assert "mce" not in m and "not normalised" in finding.summary
    assert (tmp_path / "artifacts" / "FM16.corruption-heatmap.png").stat().st_size > 1000
    assert any(p.endswith("heatmap.png") for p in finding.evidence["plots"])


def test_identity_like_severities_pass(monkeypatch, digits, plain):
    monkeypatch.setattr(fm16_corruption, "corruption_families", lambda kind: TINY)
    finding = CommonCorruption(n_inputs=200)(load_target(plain, data=digits), digits, budget=5_000, seed=0)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    assert finding.metrics["worst_accuracy_drop"] <= 0.02


def test_mce_against_a_reference(image_library, digits, plain, augmented, saved):
    check = CommonCorruption(n_inputs=200, reference=saved)
    itself = check(load_target(plain, data=digits), digits, budget=5_000, seed=0)
    m = itself.metrics
    # the reference answers the same corrupted inputs: normalised to itself, everything is 100%
    assert m["mce"] == pytest.approx(1.0) and m["relative_mce"] == pytest.approx(1.0)
    assert m["reference_clean_accuracy"] == pytest.approx(m["clean_accuracy"])
    assert m["mce_reference"] == saved and "mCE 100%" in itself.summary
    robust = check(load_target(augmented, data=digits), digits, budget=5_000, seed=0).metrics
    # trained with the corruptions as augmentation: clearly lower error than the plain reference
    assert robust["mce"] < 0.9 and robust["relative_mce"] < 0.8, (robust["mce"], robust["relative_mce"])


def test_tabular_model_positive_and_negative(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn.naive_bayes import GaussianNB

    data = load_data("builtin:breast_cancer")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(data.x_train, data.y_train)
    target = load_target(model, data=data)
    # Naive Bayes, whose narrow per-class variances noise and outliers throw off, loses about
    # 8 points on average to measurement faults: flagged at a 2% tolerance.
    fragile = load_target(GaussianNB().fit(data.x_train, data.y_train), data=data)
    flagged = CommonCorruption(tolerated_drop=0.02)(fragile, data, budget=10_000, seed=0)
    assert flagged.status is Status.VULNERABLE and flagged.metrics["corruption_kind"] == "tabular"
    assert len(flagged.metrics["corrupted_accuracy"]) == 7
    quiet = CommonCorruption(families=("rounding",), severities=(1,))(target, data, budget=10_000, seed=0)
    assert quiet.status is Status.NOT_VULNERABLE, quiet.summary


def test_flat_vectors_are_tables_unless_the_spec_is_image_shaped(digits):
    @dataclasses.dataclass
    class Spec:
        shape: tuple

    @dataclasses.dataclass
    class T:
        input_spec: Spec

    check = CommonCorruption()
    assert check._kind(T(Spec((64,))), digits) == "tabular"  # image data, but a flat input: conservative
    assert check._kind(T(Spec((1, 8, 8))), digits) == "image"
    assert check._kind(T(Spec((8, 8))), digits) == "image"
    assert CommonCorruption(kind="tabular")._kind(T(Spec((1, 8, 8))), digits) == "tabular"


def test_flat_images_get_image_corruptions_only_when_asked(image_library, digits, plain):
    from redline.data.base import Dataset

    flat = Dataset("flat", digits.x_train.reshape(-1, 64), digits.y_train, digits.x_test.reshape(-1, 64),
                   digits.y_test, spec="test:flat", modality="image")
    target = load_target(plain, data=flat)
    assert tuple(target.input_spec.shape) == (64,)
    as_table = CommonCorruption(n_inputs=50, severities=(1,))(target, flat, budget=1_000)
    assert as_table.metrics["corruption_kind"] == "tabular"
    as_image = CommonCorruption(n_inputs=50, kind="image")(target, flat, budget=1_000)
    assert as_image.metrics["corruption_kind"] == "image" and set(as_image.metrics["corrupted_accuracy"]) == {"noise", "blur"}
    assert fm16_corruption._image_shape((3 * 32 * 32,)) == (3, 32, 32) and fm16_corruption._image_shape((30,)) is None


def test_bad_parameters_and_unknown_families(digits, plain):
    target = load_target(plain, data=digits)
    for bad in ({"severities": (0,)}, {"severities": ()}, {"kind": "audio"}, {"families": ()}):
        finding = CommonCorruption(**bad)(target, digits, budget=1_000)
        assert finding.status is Status.ERROR and "\n" not in finding.reason
    finding = CommonCorruption(kind="tabular", families=("fog",))(target, digits, budget=1_000)
    assert finding.status is Status.ERROR and "unknown tabular corruption(s) fog" in finding.reason


def test_pipeline_faults_are_reported_not_judged_unless_named():
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from redline.data.base import Dataset

    x, y = load_wine(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xtr, ytr)
    data = Dataset("wine", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    target = load_target(model, data=data)
    # An honest model on 13 columns: swapped columns once cost it 35 points and made it 'vulnerable'.
    honest = CommonCorruption()(target, data, budget=10_000, seed=0)
    assert honest.status is Status.NOT_VULNERABLE, honest.summary
    m = honest.metrics
    assert set(m["pipeline_fault_accuracy"]) == {"scale_error", "swapped_columns", "stuck_columns"}
    assert "swapped_columns" not in m["judged_families"] and "gaussian_noise" in m["judged_families"]
    assert len(m["corrupted_accuracy"]) == 7 and "Pipeline faults" in honest.summary
    # the largest drop quoted (and the worst_* metrics) is a judged one, not a pipeline fault
    assert m["worst_transformation"].split("/")[0] in m["judged_families"], m["worst_transformation"]
    assert "largest drop" in honest.summary and "under swapped_columns" not in honest.summary
    named = CommonCorruption(families=("swapped_columns",))(target, data, budget=10_000, seed=0)
    assert named.status is Status.VULNERABLE and named.metrics["judged_families"] == ["swapped_columns"]


def test_image_layouts_the_corruptions_cannot_draw_are_not_applicable():
    from redline.checks.robustness.fm16_corruption import _image_shape

    assert _image_shape((3, 8, 8)) == (3, 8, 8) and _image_shape((1, 8, 8)) == (1, 8, 8)
    assert _image_shape((4, 8, 8)) is None and _image_shape((8, 8, 1)) is None  # RGBA, channels last
