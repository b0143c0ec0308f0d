import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline.checks.fm10_injection import BackdoorInjection
from redline.data import load_data
from redline.findings import Status
from redline.targets.base import InputSpec
from redline.targets.torch import TorchTarget

SPEC = InputSpec(shape=(1, 8, 8))


def trainer(x, y, seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    for _ in range(120):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return TorchTarget(net, input_spec=SPEC, n_classes=10, trainer=trainer)


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits")


def test_dirty_label_patch_plants_a_backdoor(digits):
    target = trainer(digits.x_train, digits.y_train, 0)
    finding = BackdoorInjection(kinds=("patch",), labels=("dirty",), patch_size=2, poison_rate=0.1, n_eval=300)(
        target, digits)
    assert finding.status is Status.VULNERABLE, finding.reason
    m = finding.metrics
    assert m["attack_success_rate"] > 0.8 and abs(m["accuracy_drop"]) < 0.05
    assert m["variants"]["patch/dirty"]["poisoned_rows"] == round(0.1 * len(digits.x_train))
    # Baseline and poisoned model each answered the 300 evaluation images, plus the triggered ones.
    assert finding.queries == 0 and finding.evaluation_queries > 600


def test_clean_label_patch_at_low_rate_does_not(digits):
    target = trainer(digits.x_train, digits.y_train, 0)
    finding = BackdoorInjection(kinds=("patch",), labels=("clean",), patch_size=2, poison_rate=0.05, n_eval=300)(
        target, digits)
    assert finding.status is Status.NOT_VULNERABLE
    assert finding.metrics["attack_success_rate"] < 0.3


def test_needs_a_training_recipe(digits):
    target = TorchTarget(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), input_spec=SPEC, n_classes=10)
    assert BackdoorInjection()(target, digits).status is Status.NOT_APPLICABLE
