"""redline.nn: the shared training loop, its batch plans, the seeded runs and the nets."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from redline.nn.nets import mlp, small_cnn
from redline.nn.training import FullBatch, Shuffled, deterministic, fit, train_classifier


def _blobs(n=240, seed=0):
    """Three well separated Gaussian blobs in 2-D."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, n)
    x = centres[y] + rng.normal(scale=0.6, size=(n, 2))
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def _train(seed, **kwargs):
    x, y = _blobs()
    with deterministic(seed) as generator:
        module = mlp((2,), 3, hidden=(16,))
        train_classifier(module, x, y, generator=generator, **kwargs)
    return module


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("batching", [{"batch_size": 32, "one_cycle": True}, {}])
def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(batching):
    first = _train(4, epochs=5, lr=1e-2, **batching)
    assert _same_weights(first, _train(4, epochs=5, lr=1e-2, **batching))
    assert not _same_weights(first, _train(5, epochs=5, lr=1e-2, **batching))


def test_deterministic_restores_the_callers_rng_and_threads():
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    threads = torch.get_num_threads()
    with deterministic(1):
        torch.rand(100)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "batching", [{"batch_size": 32, "one_cycle": True}, {"optimiser": "adamw", "weight_decay": 1e-3}]
)
def test_loss_falls_and_the_classifier_learns_the_blobs(batching):
    x, y = _blobs()
    with deterministic(0) as generator:
        module = mlp((2,), 3, hidden=(16,))
        with torch.no_grad():
            before = float(torch.nn.functional.cross_entropy(module(x), y))
        returned = train_classifier(module, x, y, epochs=40, lr=1e-2, generator=generator, **batching)
    assert returned is module and not module.training
    with torch.no_grad():
        after = float(torch.nn.functional.cross_entropy(module(x), y))
        accuracy = float((module(x).argmax(dim=1) == y).float().mean())
    assert after < 0.5 * before
    assert accuracy > 0.95


def test_shuffled_batches_cover_every_row_once_per_epoch_in_a_new_order():
    plan = Shuffled(10, 4, torch.Generator().manual_seed(0))
    assert plan.steps_per_epoch == 3
    epochs = [list(plan.epoch()) for _ in range(2)]
    for batches in epochs:
        assert [len(b) for b in batches] == [4, 4, 2]
        assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert not torch.equal(torch.cat(epochs[0]), torch.cat(epochs[1]))
    assert list(FullBatch().epoch()) == [slice(None)]


def _step_sizes(**kwargs):
    """Per-step movement of one scalar under a constant gradient of 1: Adam's step is then
    the learning rate of that step, so this reads the schedule back."""
    p = torch.zeros((), requires_grad=True)
    seen = []

    def batch_loss(_rows, epoch):
        seen.append((epoch, float(p.detach())))
        return p * 1.0

    fit([p], batch_loss, FullBatch(), epochs=20, lr=0.1, **kwargs)
    values = [v for _, v in seen] + [float(p.detach())]
    return [e for e, _ in seen], -np.diff(values)


def test_fit_runs_every_epoch_and_one_cycle_ramps_the_rate_up_and_down():
    epochs, constant = _step_sizes()
    assert epochs == list(range(20))
    assert np.allclose(constant, 0.1, rtol=1e-3)
    _, cycled = _step_sizes(one_cycle=True)
    peak = int(np.argmax(cycled))
    # the peak is the schedule's lr, a little less in Adam's step as one-cycle also cycles beta1
    assert 0 < peak < 19 and 0.06 < cycled.max() <= 0.1 + 1e-6
    assert cycled[0] < 0.1 * cycled.max() and cycled[-1] < 0.01 * cycled.max()


def test_adamw_decays_weights_without_any_gradient_and_adam_does_not():
    def run(optimiser):
        p = torch.ones((), requires_grad=True)
        fit([p], lambda _rows, _epoch: p * 0.0, FullBatch(), epochs=10, lr=0.1, optimiser=optimiser, weight_decay=0.5)
        return float(p.detach())

    assert run("adamw") == pytest.approx(0.95**10, rel=1e-5)
    # Adam couples the decay into the gradient, which its normalised steps of ~lr then follow.
    assert run("adam") < 0.2
    with pytest.raises(ValueError, match="optimiser"):
        run("sgd")


def test_augment_sees_each_epoch_and_replaces_the_inputs_and_penalty_joins_the_loss():
    x, y = _blobs(60)
    calls, fed = [], []

    def augment(xb, yb, epoch):
        calls.append((epoch, len(xb), len(yb)))
        return xb + 100.0

    with deterministic(0) as generator:
        module = mlp((2,), 3, hidden=(8,))
        module.register_forward_pre_hook(lambda _m, args: fed.append(args[0].detach().clone()))
        train_classifier(module, x, y, epochs=3, lr=1e-2, batch_size=25, generator=generator, augment=augment)
    assert [c[0] for c in calls] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [c[1] for c in calls[:3]] == [25, 25, 10] and all(c[1] == c[2] for c in calls)
    assert len(fed) == 9 and all(float(batch.min()) > 90 for batch in fed)  # the module saw the augmented rows

    def norm(m):
        return sum(p.pow(2).sum() for p in m.parameters())

    plain = _train(0, epochs=30, lr=1e-2)
    shrunk = _train(0, epochs=30, lr=1e-2, penalty=lambda m: 10.0 * norm(m))
    assert float(norm(shrunk).detach()) < 0.5 * float(norm(plain).detach())


def test_mini_batches_need_a_generator():
    x, y = _blobs(20)
    with pytest.raises(ValueError, match="Generator"):
        train_classifier(mlp((2,), 3, hidden=(4,)), x, y, epochs=1, lr=1e-2, batch_size=8)


def test_nets_map_inputs_to_logits():
    assert small_cnn((1, 12, 12), 5)(torch.zeros(3, 1, 12, 12)).shape == (3, 5)
    assert small_cnn((3, 8, 8), 2, channels=(4,), hidden=8)(torch.zeros(2, 3, 8, 8)).shape == (2, 2)
    net = mlp((2, 3), 4, hidden=(6, 5), activation="tanh")
    assert net(torch.zeros(7, 2, 3)).shape == (7, 4)
    assert any(isinstance(layer, torch.nn.Tanh) for layer in net)


def test_importing_the_package_loads_no_torch():
    probe = "import redline.nn, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
