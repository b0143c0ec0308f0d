"""The deploy role: a sample from where the model runs now, labels optional, never mixed into the other roles."""
import numpy as np
import pytest

from redline.checks.base import Needs
from redline.data import ROLES, Dataset, as_dataset, label_with_target, load_data
from redline.errors import DataError


def _arrays(n=40, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, d))
    y = (x[:, 0] > 0.5).astype(int)
    return x, y


def _write_csv(path, x, y=None, label="y"):
    names = [f"f{i}" for i in range(x.shape[1])]
    header = names + ([label] if y is not None else [])
    lines = [",".join(header)]
    for i, row in enumerate(x):
        cells = [f"{v:.6f}" for v in row] + ([str(int(y[i]))] if y is not None else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


class CountingTarget:
    """Just enough of a target for label_with_target: answers labels, counts rows."""

    def __init__(self):
        self.rows = 0

        class Ledger:
            def evaluating(self_inner):
                import contextlib
                return contextlib.nullcontext()

        self.ledger = Ledger()

    def predict_labels(self, x):
        self.rows += len(x)
        return np.zeros(len(x), dtype=int)


def test_deploy_is_a_role_with_optional_labels():
    assert ROLES[-1] == "deploy"
    x, y = _arrays()
    data = as_dataset({"x_test": x, "y_test": y, "x_deploy": x[:10] + 5.0})
    assert data.roles == ("test", "deploy")
    assert data.has("deploy") and data.y_deploy is None
    labelled = as_dataset({"x_test": x, "y_test": y, "x_deploy": x[:10], "y_deploy": y[:10]})
    assert np.array_equal(labelled.y_deploy, y[:10])


def test_deploy_rows_leave_bounds_classes_and_attacker_rows_alone():
    x, y = _arrays()
    plain = as_dataset({"x_test": x, "y_test": y})
    # A shifted deployment sample far outside the box, holding a class the model never saw.
    with_deploy = as_dataset({"x_test": x, "y_test": y, "x_deploy": x[:10] + 7.0, "y_deploy": np.full(10, 5)})
    assert with_deploy.bounds == plain.bounds
    assert with_deploy.n_classes == plain.n_classes == 2
    for a, b in zip(with_deploy.attacker_data(), plain.attacker_data()):
        assert np.array_equal(a, b)
    for a, b in zip(with_deploy.evaluation_data(), plain.evaluation_data()):
        assert np.array_equal(a, b)
    assert np.array_equal(with_deploy.any_x(), plain.any_x())


def test_deploy_inputs_of_another_shape_are_one_line_data_errors(tmp_path):
    x, y = _arrays()
    with pytest.raises(DataError, match="x_deploy") as err:
        as_dataset({"x_test": x, "y_test": y, "x_deploy": np.zeros((5, 4))})
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="deploy"):
        Dataset(name="d", x_test=x, y_test=y, x_deploy=np.zeros((5, 4)))
    with pytest.raises(DataError, match="x_deploy has 5 rows but y_deploy has 3"):
        as_dataset({"x_test": x, "y_test": y, "x_deploy": x[:5], "y_deploy": y[:3]})
    test = _write_csv(tmp_path / "test.csv", x, y)
    new = _write_csv(tmp_path / "new.csv", np.zeros((5, 4)))
    with pytest.raises(DataError, match="deploy") as err:
        load_data(f"test=csv:{test}#label=y,deploy=csv:{new}")
    assert "\n" not in str(err.value)


def test_a_deployment_sample_alone_is_refused():
    x, _ = _arrays()
    with pytest.raises(DataError, match="only a deployment sample"):
        as_dataset({"x_deploy": x})


def test_npz_arrays_named_x_deploy_and_y_deploy(tmp_path):
    x, y = _arrays()
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:], x_deploy=x[:7] * 0.5)
    data = load_data(f"npz:{path}")
    assert data.roles == ("train", "test", "deploy")
    assert len(data.x_deploy) == 7 and data.y_deploy is None
    np.savez(path, x_test=x, y_test=y, x_deploy=x[:7], y_deploy=y[:7])
    assert np.array_equal(load_data(f"npz:{path}").y_deploy, y[:7])


def test_one_file_per_role_with_a_deploy_csv(tmp_path):
    x, y = _arrays()
    test = _write_csv(tmp_path / "test.csv", x, y)
    new = _write_csv(tmp_path / "new.csv", x[:9] + 0.1)  # inputs only: no label column, no option
    data = load_data(f"test=csv:{test}#label=y,deploy=csv:{new}")
    assert data.roles == ("test", "deploy") and data.y_deploy is None
    assert data.x_deploy.shape == (9, 3)
    labelled = _write_csv(tmp_path / "labelled.csv", x[:9], y[:9])
    data = load_data(f"test=csv:{test}#label=y,deploy=csv:{labelled}#label=y")
    assert np.array_equal(data.y_deploy, y[:9])
    npz = tmp_path / "new.npz"
    np.savez(npz, x=x[:6], y=y[:6])
    data = load_data(f"test=csv:{test}#label=y,deploy=npz:{npz}")
    assert data.roles == ("test", "deploy") and np.array_equal(data.y_deploy, y[:6])
    # A deploy CSV that kept its label column but did not name it has one column too many.
    with pytest.raises(DataError, match="deploy"):
        load_data(f"test=csv:{test}#label=y,deploy=csv:{labelled}")


def test_a_split_never_makes_the_deploy_role(tmp_path):
    x, y = _arrays(n=100)
    path = _write_csv(tmp_path / "all.csv", x, y)
    with pytest.raises(DataError, match="cannot make the deploy role"):
        load_data(f"csv:{path}#label=y&split=test:0.5,deploy:0.5")
    with pytest.raises(DataError, match="cannot make the deploy role"):
        as_dataset({"x": x, "y": y, "split": {"test": 0.5, "deploy": 0.5}})


def test_describe_names_the_deployment_sample_and_its_labels():
    x, y = _arrays()
    plain = as_dataset({"x_test": x, "y_test": y}).describe()
    assert "deploy" not in plain["rows"] and "deploy" not in plain  # reports without the role are unchanged
    unlabelled = as_dataset({"x_test": x, "y_test": y, "x_deploy": x[:8]}).describe()
    assert unlabelled["rows"]["deploy"] == 8 and "without labels" in unlabelled["deploy"]
    assert "unlabelled" not in unlabelled  # the target never labels the deployment sample
    labelled = as_dataset({"x_test": x, "y_test": y, "x_deploy": x[:8], "y_deploy": y[:8]}).describe()
    assert "with labels" in labelled["deploy"]


def test_the_target_never_labels_the_deployment_sample():
    x, _ = _arrays()
    data = as_dataset({"x_test": x, "x_deploy": x[:8]})
    target = CountingTarget()
    labelled, asked = label_with_target(data, target)
    assert asked == {"test": len(x)} and target.rows == len(x)
    assert labelled.y_deploy is None
    labelled, asked = label_with_target(data, CountingTarget(), roles=("test", "deploy"))
    assert "deploy" not in asked and labelled.y_deploy is None


def test_needs_deploy_is_not_applicable_with_a_reason_when_it_is_missing():
    x, y = _arrays()
    needs = Needs(roles=("test", "deploy"))
    reason = needs.missing_data(as_dataset({"x_test": x, "y_test": y}))
    assert "deploy" in reason and "where it runs now" in reason and "x_deploy" in reason
    assert needs.missing_data(as_dataset({"x_test": x, "y_test": y, "x_deploy": x[:5]})) is None
    # Checks that do not ask for the role never read it: their labelled roles stay as before.
    data = as_dataset({"x_test": x, "x_deploy": x[:5]})
    assert Needs(roles=("test",)).labelled_roles(data) == ("test",)
    assert Needs(roles=("test",), attacker=True).labelled_roles(data) == ("test",)


@pytest.mark.parametrize("check_id, params", [
    ("FM05.equation_solving", {}),
    ("FM16.corruption", {"n_inputs": 40, "severities": [3]}),
    ("FM04.threshold", {}),
])
def test_a_deployment_sample_changes_no_other_check(check_id, params, linear_target, blob_data):
    """The same check on the same data, with and without a (far shifted, unlabelled) deployment
    sample: identical metrics and query counts, since only checks that ask for the role read it."""
    import dataclasses

    from redline.checks import all_checks

    shifted = dataclasses.replace(blob_data, x_deploy=blob_data.x_pool[:100] * 3 + 5)
    cls = all_checks()[check_id]
    plain = cls(**params)(linear_target, blob_data, budget=3000, seed=0)
    with_deploy = cls(**params)(linear_target, shifted, budget=3000, seed=0)
    assert plain.status == with_deploy.status and plain.status.value != "not_applicable", plain.reason
    assert plain.metrics == with_deploy.metrics
    assert (plain.queries, plain.evaluation_queries) == (with_deploy.queries, with_deploy.evaluation_queries)
