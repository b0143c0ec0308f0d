"""FM02.clean_label: feature collision moves chosen digits when the victim retrains only the
last layer on a fixed feature extractor; unperturbed copies do not; a victim that retrains
the whole network end to end is not moved."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression
from torch import nn

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.training_time.clean_label import collide, deep_knn_keep, features
from redline.checks.training_time.fm02_clean_label import CleanLabelPoisoning
from redline.data import load_data
from redline.findings import Status
from redline.targets import load_target
from redline.targets.base import InputSpec
from redline.targets.torch import TorchTarget


@pytest.fixture(scope="module")
def data():
    return load_data("builtin:digits")


@pytest.fixture(scope="module")
def extractor():
    """The zoo's digits MLP without its last layer: a frozen, pretrained feature extractor."""
    net = zoo.load_target("digits_mlp_overfit").module
    return nn.Sequential(*list(net.children())[:-1]).eval()


def _transfer_target(extractor, data):
    """Transfer learning: the recipe keeps the extractor and refits a logistic-regression head."""
    target = zoo.load_target("digits_transfer_head")
    assert all(torch.equal(a, b) for a, b in zip(target.module[:-1].parameters(), extractor.parameters()))
    return target


def _end_to_end_target(data):
    """A small MLP the recipe trains from scratch, every layer, for each retraining."""
    spec = InputSpec.from_data(data.x_train)

    def train(x, y, seed):
        generator = torch.Generator().manual_seed(seed)
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
        optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(100):
            loss = nn.functional.cross_entropy(net(xt), yt)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return TorchTarget(net.eval(), input_spec=spec, n_classes=10, spec="test:end_to_end", trainer=train)

    return train(data.x_train, data.y_train, 0)


def test_flags_a_last_layer_retraining_victim_and_clean_copies_do_not(extractor, data, tmp_path):
    target = _transfer_target(extractor, data)
    check = CleanLabelPoisoning(n_targets=4, victim_seeds=1, defences=("deep_knn",))
    finding = check(target, data, seed=0, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, (finding.reason, finding.metrics)
    m = finding.metrics
    assert m["setting"] == "fixed_features"
    assert m["target_success_rate"] >= 0.5 > m["baseline_target_success_rate"]
    assert abs(m["clean_accuracy_change"]) < 0.02
    assert m["poison_rows"] == 19 and m["epsilon"] == pytest.approx(0.2)
    assert 0 <= m["defended_target_success_rate_deep_knn"] <= 1
    assert finding.queries == 0 and finding.evaluation_queries > 0
    saved = np.load(tmp_path / finding.evidence["examples"])
    shift = np.abs(saved["x_poison"] - saved["x_base"]).max()
    assert shift <= 0.2 + 1e-6 and saved["x_poison"].min() >= 0 and saved["x_poison"].max() <= 1
    for target_row in finding.evidence["targets"]:
        assert target_row["adversarial_class"] != target_row["true_class"]


def test_a_victim_that_retrains_end_to_end_is_not_moved(data):
    target = _end_to_end_target(data)
    finding = CleanLabelPoisoning(n_targets=4, victim_seeds=1, defences=())(target, data, seed=0)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert finding.metrics["setting"] == "end_to_end"
    assert finding.metrics["target_success_rate"] < 0.3


def test_not_applicable_without_a_network_and_bad_parameters(extractor, data):
    flat = data.x_train.reshape(len(data.x_train), -1)
    logistic = load_target(LogisticRegression(max_iter=500).fit(flat, data.y_train), data=data)
    finding = CleanLabelPoisoning(n_targets=1)(logistic, data)
    assert finding.status is Status.NOT_APPLICABLE and "linear last layer" in finding.reason
    target = _transfer_target(extractor, data)
    assert CleanLabelPoisoning(poison_rate=0.7)(target, data).status is Status.ERROR
    assert CleanLabelPoisoning(defences=("nope",))(target, data).status is Status.ERROR
    target.trainer = None
    target.capabilities = target.capabilities.__class__(**{**target.capabilities.to_dict(), "trainable": False})
    assert CleanLabelPoisoning()(target, data).status is Status.NOT_APPLICABLE


def test_collision_stays_in_the_box_and_gets_closer(extractor, data):
    net = nn.Sequential(extractor, nn.Linear(128, 10))  # features() reads the input of the last layer
    base, goal = data.x_pool[:3], data.x_test[0]
    before = np.linalg.norm(features(net, base) - features(net, goal[None]), axis=1).mean()
    poisons, _ = collide(net, base, goal, epsilon=0.1, lower=0.0, upper=1.0, steps=30)
    after = np.linalg.norm(features(net, poisons) - features(net, goal[None]), axis=1).mean()
    assert np.abs(poisons - base).max() <= 0.1 + 1e-6 and poisons.min() >= 0 and poisons.max() <= 1
    assert after < 0.9 * before


def test_deep_knn_drops_a_row_among_the_other_class():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2)), [[5.0, 5.0]]])
    labels = np.array([0] * 20 + [1] * 20 + [0])
    keep = deep_knn_keep(points, labels, k=5)
    assert not keep[-1] and keep[:-1].all()
