from __future__ import annotations

import numpy as np
import pytest
import torch

from redline.errors import BudgetExceeded, TargetError, UnsafeModelError
from redline.targets import InputSpec
from redline.targets.torch import TorchTarget, load_torchscript

IMAGE = InputSpec(shape=(1, 8, 8))
# torch.jit is deprecated upstream but TorchScript files are still what users hand us.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))


def cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 5),
    )


class Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.inner(x)


def test_predict_is_softmax_of_eval_mode_logits():
    module = mlp().train()
    target = TorchTarget(module, input_spec=InputSpec(shape=(4,)), n_classes=3)
    assert not module.training  # dropout must be off while auditing
    x = np.random.default_rng(0).uniform(size=(10, 4))
    p = target.predict(x)
    with torch.no_grad():
        expected = torch.softmax(module(torch.tensor(x, dtype=torch.float32)), dim=1).numpy()
    np.testing.assert_allclose(p, expected, atol=1e-6)
    np.testing.assert_allclose(target.predict(x), p)  # deterministic: dropout is off
    assert p.dtype == np.float64 and target.capabilities.gradients


def test_logits_are_differentiable_and_counted():
    target = TorchTarget(cnn(), input_spec=IMAGE, n_classes=5)
    x = torch.rand(6, 1, 8, 8, requires_grad=True)
    logits = target.logits(x)
    assert logits.shape == (6, 5)
    logits.max(dim=1).values.sum().backward()
    assert float(x.grad.abs().sum()) > 0
    assert target.ledger.total == 6


def test_probability_modules_give_log_probabilities():
    module = torch.nn.Sequential(mlp(), torch.nn.Softmax(dim=1))
    target = TorchTarget(module, input_spec=InputSpec(shape=(4,)), n_classes=3, output_kind="probabilities")
    x = np.random.default_rng(1).uniform(size=(5, 4))
    p = target.predict(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    log_p = target.logits(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(torch.exp(log_p).detach().numpy(), p, atol=1e-6)


def test_wrong_width_and_bad_output_kind_are_errors():
    with pytest.raises(TargetError, match="output_kind"):
        TorchTarget(mlp(), input_spec=InputSpec(shape=(4,)), n_classes=3, output_kind="scores")
    target = TorchTarget(mlp(), input_spec=InputSpec(shape=(4,)), n_classes=4)
    with pytest.raises(TargetError, match="4 probabilities per row, got 3"):
        target.predict(np.zeros((2, 4)))


def test_budget_is_enforced_before_the_module_runs():
    module = Counting(mlp())
    target = TorchTarget(module, input_spec=InputSpec(shape=(4,)), n_classes=3)
    target.max_batch = 3
    target.ledger.budget = 10
    target.predict(np.zeros((8, 4)))
    assert target.ledger.attack == 8 == module.rows
    with pytest.raises(BudgetExceeded):
        target.predict(np.zeros((3, 4)))
    with pytest.raises(BudgetExceeded):
        target.logits(torch.zeros(3, 4))
    assert module.rows == 8


def test_torchscript_needs_the_scanner(tmp_path):
    path = tmp_path / "model.pt"
    torch.jit.script(mlp().eval()).save(str(path))
    with pytest.raises(UnsafeModelError, match="scanner"):
        load_torchscript(path, input_spec=InputSpec(shape=(4,)))


def test_torchscript_loads_after_a_safe_scan(tmp_path, fake_scanner):
    module = mlp().eval()
    path = tmp_path / "model.pt"
    torch.jit.trace(module, torch.zeros(1, 4)).save(str(path))
    scanned = fake_scanner("safe")
    target = load_torchscript(path, input_spec=InputSpec(shape=(4,)))
    assert scanned == [path]
    assert target.n_classes == 3 and target.spec == f"torch:{path}"
    x = np.random.default_rng(2).uniform(size=(4, 4))
    with torch.no_grad():
        expected = torch.softmax(module(torch.tensor(x, dtype=torch.float32)), 1).numpy()
    np.testing.assert_allclose(target.predict(x), expected, atol=1e-6)


def test_a_torchscript_model_that_ends_in_a_softmax_is_read_as_probabilities(tmp_path, fake_scanner):
    # Read as logits, a second softmax flattened a 0.998-confident answer to about 0.23.
    module = torch.nn.Sequential(mlp(), torch.nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        module[0][3].weight.mul_(20)  # confident answers, so a second softmax would show
    path = tmp_path / "softmax.pt"
    torch.jit.trace(module, torch.zeros(2, 4)).save(str(path))
    fake_scanner("safe")
    target = load_torchscript(path, input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0))
    assert target.output_kind == "probabilities"
    x = np.random.default_rng(3).uniform(size=(5, 4))
    with torch.no_grad():
        expected = module(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(target.predict(x), expected, atol=1e-6)
    assert target.predict(x).max() > 0.9
    # logits stay logits, and an in-memory module is read the same way
    plain = tmp_path / "logits.pt"
    torch.jit.trace(mlp().eval(), torch.zeros(2, 4)).save(str(plain))
    assert load_torchscript(plain, input_spec=InputSpec(shape=(4,))).output_kind == "logits"
    from redline.targets.adapters import LoadRequest
    from redline.targets.torch import open_module

    request = LoadRequest(spec="module", input_spec=InputSpec(shape=(4,), lower=0.0, upper=1.0))
    assert open_module(module, request).output_kind == "probabilities"
    assert open_module(mlp(), request).output_kind == "logits"


def test_torchscript_refused_when_the_scan_finds_a_problem(tmp_path, fake_scanner):
    path = tmp_path / "model.pt"
    torch.jit.trace(mlp().eval(), torch.zeros(1, 4)).save(str(path))
    fake_scanner("unsafe", detail="calls os.system at load")
    with pytest.raises(UnsafeModelError, match=r"scan verdict unsafe\): calls os.system at load"):
        load_torchscript(path, input_spec=InputSpec(shape=(4,)))


def test_torchscript_garbage_is_a_clear_error(tmp_path, fake_scanner):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a model")
    fake_scanner("safe")
    with pytest.raises(TargetError, match="not a loadable TorchScript file"):
        load_torchscript(path, input_spec=InputSpec(shape=(4,)), n_classes=3)


def test_compiled_inference_answers_like_the_module_and_is_opt_in():
    import numpy as np
    import torch

    from redline.targets.base import InputSpec
    from redline.targets.torch import OnnxRuntimeModule, TorchTarget

    torch.manual_seed(0)
    calls = {"n": 0}

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)
            self.head = torch.nn.Linear(4 * 6 * 6, 3)

        def forward(self, x):
            calls["n"] += 1  # a Python side effect a trace would drop
            return self.head(torch.relu(self.conv(x)).flatten(1))

    spec = InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)
    x = np.random.default_rng(0).random((16, 1, 8, 8), dtype=np.float32)
    plain = TorchTarget(Net(), input_spec=spec, n_classes=3)
    plain.predict(x)
    assert plain._inference is None and calls["n"] == 1  # default: the module itself answers

    fast = TorchTarget(plain.module, input_spec=spec, n_classes=3, compile_inference=True)
    np.testing.assert_allclose(fast.predict(x), plain.predict(x), atol=1e-5)
    assert isinstance(fast._inference, OnnxRuntimeModule)  # the first choice, when it answers alike
    assert fast.ledger.attack + fast.ledger.evaluation == len(x)  # the compile probes are not queries
    calls_before = calls["n"]
    np.testing.assert_allclose(fast.predict(x[:1]), plain.predict(x[:1]), atol=1e-5)
    assert calls["n"] == calls_before + 1  # only the plain target's call: one row runs compiled too


def test_compiled_inference_falls_back_to_torchscript_when_the_export_fails(monkeypatch):
    import numpy as np
    import torch

    from redline.targets import torch as torch_targets
    from redline.targets.base import InputSpec

    def refuse(module, example):
        raise RuntimeError("operator not exportable")

    monkeypatch.setattr(torch_targets, "_onnx_runtime_module", refuse)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = np.random.default_rng(1).random((10, 5), dtype=np.float32)
    fast = torch_targets.TorchTarget(net, input_spec=InputSpec(shape=(5,)), n_classes=3, compile_inference=True)
    got = fast.predict(x)
    assert isinstance(fast._inference, torch.jit.ScriptModule)
    with torch.no_grad():
        np.testing.assert_allclose(got, torch.softmax(net(torch.from_numpy(x)), 1).numpy(), atol=1e-5)


def test_a_module_that_cannot_be_traced_runs_as_it_is():
    import numpy as np
    import torch

    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            # Control flow on values: a trace would freeze one branch, so the check must refuse it.
            out = torch.stack([x.flatten(1).sum(1), -x.flatten(1).sum(1)], dim=1)
            return out if float(x.sum()) > 8 else -out

    spec = InputSpec(shape=(4,), lower=0.0, upper=1.0)
    t = TorchTarget(DataDependent(), input_spec=spec, n_classes=2, compile_inference=True)
    x = np.full((4, 4), 0.9, dtype=np.float32)
    first = t.predict(x)
    assert t._inference is None
    np.testing.assert_allclose(t.predict(np.full((2, 4), 0.1, dtype=np.float32)).argmax(1), [1, 1])
    assert first.argmax(1).tolist() == [0, 0, 0, 0]


def test_the_compiled_copy_follows_changes_of_the_weights():
    import numpy as np
    import torch

    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = np.random.default_rng(2).random((6, 5), dtype=np.float32)
    target = TorchTarget(net, input_spec=InputSpec(shape=(5,)), n_classes=3, compile_inference=True)
    before = target.predict(x)
    first_copy = target._inference
    assert first_copy is not None

    def answers():
        with torch.no_grad():
            return torch.softmax(target.module(torch.from_numpy(x)), 1).numpy()

    with torch.no_grad():
        net[2].bias.add_(torch.tensor([3.0, 0.0, -3.0]))  # fine-tuned in place
    np.testing.assert_allclose(target.predict(x), answers(), atol=1e-5)
    np.testing.assert_allclose(target.predict(x[:1]), answers()[:1], atol=1e-5)  # one row: the live module
    assert target._inference is not first_copy and np.abs(target.predict(x) - before).max() > 0.1
    target.module = torch.nn.Sequential(torch.nn.Linear(5, 3))  # a new module altogether
    np.testing.assert_allclose(target.predict(x), answers(), atol=1e-5)
