"""Policies as targets: callables, predict() objects (Stable-Baselines3 style), py:module:attr,
TorchScript files; the ledger counts one row per environment step."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from redline.data import load_data
from redline.errors import TargetError, UsageError
from redline.targets import load_target, load_target_config
from redline.targets.policy import PolicyCapabilities, is_policy


@pytest.fixture(scope="module")
def boat():
    return load_data("env:redline/BoatRace-v0")


def always_right(obs):
    return np.ones(len(obs), dtype=int)


class Sb3Like:
    """predict(obs, deterministic=...) -> (actions, state), as Stable-Baselines3 answers."""

    def __init__(self):
        self.asked_deterministic = []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        self.asked_deterministic.append(deterministic)
        return np.full(len(observation), 2), None


def test_a_callable_is_a_deterministic_policy_and_each_observation_is_a_step(boat):
    policy = load_target(always_right, data=boat)
    assert is_policy(policy) and isinstance(policy.capabilities, PolicyCapabilities)
    assert policy.capabilities.deterministic and policy.capabilities.n_actions == 5
    assert policy.act(np.zeros((7, 2))).tolist() == [1] * 7
    assert policy.ledger.total == 7


def test_a_stable_baselines_style_predict_is_accepted_and_asked_for_deterministic_actions(boat):
    model = Sb3Like()
    policy = load_target(model, data=boat)
    assert policy.act(np.zeros((3, 2))).tolist() == [2, 2, 2]
    assert set(model.asked_deterministic) == {True}


def test_a_random_policy_is_not_deterministic_and_bad_actions_are_errors(boat):
    rng = np.random.default_rng(0)
    shaky = load_target(lambda obs: rng.integers(0, 5, len(obs)), data=boat)
    assert shaky.capabilities.deterministic is False
    with pytest.raises(TargetError, match=r"class indices in \[0, 5\)"):
        load_target(lambda obs: np.full(len(obs), 9), data=boat)
    flips = iter(range(10**6))
    late = load_target(lambda obs: np.full(len(obs), 9 if next(flips) > 1 else 0), data=boat)
    with pytest.raises(TargetError, match=r"class indices in \[0, 5\)"):
        late.act(np.zeros((2, 2)))
    with pytest.raises(TargetError, match="fails on sample observations"):
        load_target(lambda obs: 1 / 0, data=boat)
    with pytest.raises(TargetError, match="not a int"):
        load_target(3, data=boat)


def test_py_module_attr_names_a_policy(tmp_path, monkeypatch, boat):
    (tmp_path / "my_agent.py").write_text(textwrap.dedent("""
        import numpy as np
        def act(obs):
            return np.zeros(len(obs), dtype=int)
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = load_target("py:my_agent:act", data=boat)
    assert policy.spec == "py:my_agent:act" and policy.act(np.ones((2, 2))).tolist() == [0, 0]
    by_file = load_target(f"py:{tmp_path / 'my_agent.py'}:act", data=boat)
    assert by_file.act(np.ones((1, 2))).tolist() == [0]
    with pytest.raises(TargetError, match="has no attribute 'nope'"):
        load_target("py:my_agent:nope", data=boat)
    with pytest.raises(UsageError, match="needs its environment"):
        load_target("py:my_agent:act")


def test_a_torchscript_file_is_a_policy_when_the_data_is_an_environment(tmp_path, boat, fake_scanner):
    torch = pytest.importorskip("torch")
    fake_scanner("safe")

    class Prefers(torch.nn.Module):
        def forward(self, x):
            scores = torch.zeros(x.shape[0], 5)
            scores[:, 3] = 1.0 + x[:, 0]
            return scores

    path = tmp_path / "policy.pt"
    torch.jit.script(Prefers()).save(str(path))
    policy = load_target(f"torch:{path}", data=boat)
    assert is_policy(policy) and policy.spec == f"torch:{path}"
    assert policy.act(np.zeros((4, 2))).tolist() == [3] * 4 and policy.ledger.total == 4
    config = tmp_path / "policy.yaml"
    config.write_text("kind: policy\nn_classes: 5\ninput: {shape: [2]}\n")
    alone = load_target(str(path), config=config)
    assert is_policy(alone) and alone.act(np.zeros((1, 2))).tolist() == [3]


def test_the_target_config_kind_is_checked(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: robot\n")
    with pytest.raises(UsageError, match="kind: must be one of model, policy"):
        load_target_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("kind: policy\nresponse: {actions_key: result.moves}\nrequest: {inputs_key: obs}\n")
    cfg = load_target_config(good)
    assert (cfg.kind, cfg.actions_key, cfg.observations_key) == ("policy", "result.moves", "obs")


def test_zoo_agents_can_retrain_in_an_environment(boat):
    agent = load_target("zoo:boatrace_q_performance")
    assert agent.capabilities.trainable and agent.spec == "zoo:boatrace_q_performance"
    fresh = agent.relearn(boat, seed=1)
    assert is_policy(fresh) and fresh.spec.endswith("@retrained")
    assert fresh.act(np.array([[1.0, 1.0]])).tolist() == [1]  # clockwise from the start
