"""Per-feature input bounds and the epsilon measured in units of each feature's range."""

import numpy as np
import pytest

from redline.checks.evasion.feasible import make_feasible
from redline.errors import UsageError
from redline.targets.base import FeatureConstraints, InputSpec
from redline.targets.config import TargetConfig
from redline.util.epsilon import FeatureUnits, default_epsilon_units, epsilon_units


def table():
    x = np.array([[0.0, 100.0, 0.01], [1.0, 4100.0, 0.06], [0.5, 2000.0, 0.03]], dtype=np.float32)
    return x, InputSpec.from_data(x)


def test_tables_keep_each_columns_range_and_images_share_one():
    x, spec = table()
    lo, hi = spec.feature_bounds()
    np.testing.assert_allclose(lo, [0.0, 100.0, 0.01], rtol=1e-6)
    np.testing.assert_allclose(hi, [1.0, 4100.0, 0.06], rtol=1e-6)
    assert spec.per_feature and spec.lower == 0.0 and spec.upper == 4100.0
    images = InputSpec.from_data(np.random.default_rng(0).uniform(size=(5, 1, 4, 4)))
    assert not images.per_feature and images.feature_lower is None
    assert images.feature_bounds()[0].shape == (16,)
    assert spec.to_dict()["feature_upper"][1] == 4100.0 and "feature_upper" not in images.to_dict()


def test_a_ranges_constraint_replaces_the_datas_bounds():
    _, spec = table()
    spec = InputSpec(spec.shape, lower=spec.lower, upper=spec.upper, feature_lower=spec.feature_lower,
                     feature_upper=spec.feature_upper, constraints=FeatureConstraints(ranges=((1, 0.0, 10_000.0),)))
    lo, hi = spec.feature_bounds()
    assert (lo[1], hi[1]) == (0.0, 10_000.0)


def test_per_feature_bounds_must_match_the_width():
    from redline.errors import TargetError

    with pytest.raises(TargetError, match="3 features"):
        InputSpec((3,), feature_lower=(0.0, 1.0), feature_upper=(1.0, 2.0))


def test_default_epsilon_per_norm_and_kind_of_input():
    _, spec = table()
    image = InputSpec((1, 28, 28))
    assert default_epsilon_units(spec, "linf") == default_epsilon_units(image, "linf") == 0.2
    assert default_epsilon_units(image, "l2") == pytest.approx(0.1 * 28)
    assert default_epsilon_units(spec, "l2") == 0.2  # tables: no column beyond the L-inf budget
    assert epsilon_units(0.05, spec, "linf") == 0.05
    with pytest.raises(ValueError):
        epsilon_units(-1, spec, "linf")


def test_units_map_round_trips_and_is_the_identity_on_unit_images():
    x, spec = table()
    units = FeatureUnits.from_spec(spec)
    z = units.to_unit(x)
    assert z.min() >= 0 and z.max() <= 1
    np.testing.assert_allclose(units.from_unit(z, np.float32), x, rtol=1e-6)
    image_units = FeatureUnits.from_spec(InputSpec((1, 2, 2)))
    img = np.full((1, 1, 2, 2), 0.3, np.float32)
    assert image_units.identity and image_units.to_unit(img) is img


def test_linf_ball_is_per_feature():
    x, spec = table()
    x0 = x[2:3]
    far = x0 + np.array([[1.0, 4000.0, 1.0]], np.float32)
    out = make_feasible(far, x0, spec, eps=0.1, norm="linf")
    np.testing.assert_allclose(out - x0, [[0.1, 400.0, 0.005]], rtol=1e-4)


def test_linf_snaps_categories_to_the_nearest_value_inside_each_features_box():
    spec = InputSpec((2,), lower=0.0, upper=10.0, feature_lower=(0.0, 0.0), feature_upper=(10.0, 10.0),
                     constraints=FeatureConstraints(categorical=((0, (0.0, 1.5, 4.0, 10.0)),), integer=(1,)))
    x0 = np.array([[0.0, 3.0]])
    # Asked for +2.0 on both (eps 0.2 of a 10-wide range): category 1.5 is inside the box,
    # 4.0 is not; feature 1 may reach 5, and one feature's limit does not undo the other.
    out = make_feasible(np.array([[3.0, 5.0]]), x0, spec, eps=0.2, norm="linf")
    np.testing.assert_array_equal(out, [[1.5, 5.0]])
    out = make_feasible(np.array([[9.0, 3.4]]), x0, spec, eps=0.1, norm="linf")  # no category within 1.0
    np.testing.assert_array_equal(out, [[0.0, 3.0]])


def test_config_bounds_per_feature_or_shared():
    _, data_spec = table()
    cfg = TargetConfig.from_mapping({"input": {"lower": [0, 0, 0], "upper": [1, 5000, 0.1]}})
    spec = cfg.apply_input(data_spec)
    assert spec.feature_bounds()[1].tolist() == [1.0, 5000.0, 0.1] and spec.upper == 5000.0
    shared = TargetConfig.from_mapping({"input": {"lower": 0, "upper": 1}}).apply_input(data_spec)
    assert shared.feature_bounds()[1].tolist() == [1.0, 1.0, 1.0]  # the config's number beats the data
    with pytest.raises(UsageError, match="input.upper: 2 values given for 3 features"):
        TargetConfig.from_mapping({"input": {"upper": [1, 2]}}).apply_input(data_spec)
    with pytest.raises(UsageError, match="feature 1"):
        TargetConfig.from_mapping({"input": {"lower": [0, 9, 0], "upper": [1, 5, 1]}}).apply_input(data_spec)
    with pytest.raises(UsageError, match="input.lower"):
        TargetConfig.from_mapping({"input": {"lower": ["a"]}})


def test_a_column_that_never_varies_gets_the_tables_range_not_a_zero_width_one():
    # digits' corner pixel is 0 in every image: a zero-width range made every scan of such a
    # table fail ("lower bound must be below its upper bound") and every epsilon zero.
    x = np.array([[0.0, 1.0, 5.0], [0.0, 3.0, 7.0], [0.0, 2.0, 6.0]])
    lo, hi = InputSpec.from_data(x).feature_bounds()
    assert lo.tolist() == [0.0, 1.0, 5.0] and hi.tolist() == [7.0, 3.0, 7.0]
    flat = InputSpec.from_data(np.full((4, 2), 3.0))
    assert flat.lower == 3.0 and flat.upper == 4.0 and flat.feature_bounds()[1].tolist() == [4.0, 4.0]


def test_a_table_with_a_constant_column_can_be_scanned(tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    import redline

    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=200).fit(x[:600], y[:600])
    report = redline.scan(model, {"x_test": x[600:700], "y_test": y[600:700]}, select="FM01.square", budget=200)
    assert report.findings[0].status != "error", report.findings[0].reason
