"""The contract every registered check keeps, tested over all of them (a new check is
covered as soon as it is registered):

- its parameters round-trip (get_params -> constructor -> the same), each has a type
  annotation and a one-line meaning, unknown names and ill-typed values are usage errors,
  and values its own validation refuses are refused at plan time;
- on a small model it can attack, the rows the model answered under the finding's ledger
  equal ``queries + evaluation_queries``, and every metric it reports is one it declares;
- the triage rules read only metrics that some check of the mode declares.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest

from redline.checks import all_checks
from redline.checks.params import instantiate, normalise_params, param_specs
from redline.data.base import Dataset
from redline.errors import UsageError
from redline.findings import Status
from redline.targets.base import InputSpec, raw_rows

CHECKS = all_checks()
IDS = list(CHECKS)

# Values each check's own validation refuses (ranges and choices; types are checked for all).
BAD_VALUES = {
    "FM01.decision": {"norm": "l3", "subspace": 1.5},
    "FM01.min_norm": {"norm": "l1", "gamma": 2.0},
    "FM01.pgd": {"norm": "l3", "steps": 0},
    "FM01.square": {"norm": "l0", "p_init": 2.0},
    "FM01.transfer": {"epsilon": -0.1, "steps": 0},
    "FM02.clean_label": {"poison_rate": 0.9, "defences": ["nope"]},
    "FM02.feedback_loop": {"rounds": 0},
    "FM02.label_flip": {"strategies": ["nope"]},
    "FM03.reconstruction": {"gradients": "nope", "steps": 0},
    "FM05.learning": {"strategy": "nope", "augment_share": 1.0},
    "FM05.path_finding": {"tolerance": 2.0},
    "FM06.reprogramming": {"task": "nope", "lr": -1.0},
    "FM07.eot_patch": {"access": "nope", "holdout_widen": 0.5},
    "FM07.eot_perturbation": {"access": "nope", "eval_samples": 0},
    "FM08.capacity_abuse": {"families": ["nope"], "n_references": 1},
    "FM08.exfiltration": {"alpha": 2.0, "lsb_bits": [40]},
    "FM10.injection": {"kinds": ["nope"], "clean_corners": "some"},
    "FM10.neural_cleanse": {"attack_success": 2.0, "cost_factor": 0.5},
    "FM11.fuzz": {"timeout": 1000.0, "include": "nan,no_such_kind"},
    "FM02.availability": {"steps": 0, "defences": ["nope"]},
    "FM02.regression": {"step_size": -1.0, "surrogate_alpha": -1.0},
    "FM03.attribute_inference": {"variant": "nope", "alpha": 2.0},
    "FM04.label_only": {"method": "nope", "max_noise": 2.0},
    "FM04.lira": {"n_reference": 0, "augmentations": 99},
    "FM04.rmia": {"a": 2.0, "gamma": 0.0},
    "FM04.shadow": {"n_shadow": 0},
    "FM04.threshold": {"score": "nope"},
    "FM05.equation_solving": {"spread": 2.0},
    "FM05.equation_solving_mlp": {"activation": "sine", "restarts": 0},
    "FM10.activation_clustering": {"reduce": "tsne"},
    "FM10.max_margin": {"start": "random"},
    "FM10.spectral_signatures": {"epsilon": 0.7},
    "FM10.strip": {"overlays": 1},
    "FM16.corruption": {"severities": [6], "kind": "audio"},
    "FM15.natural_adversarial": {"rows": "train", "max_conditions": 3},
    "FM14.deployment_shift": {"method": "nope", "tolerated_drop": 1.5},
    "FM17.operating_conditions": {"n_inputs": 0},
    "FM17.test_adequacy": {"tolerance": 0.7, "top_share": 0.0},
}


def _wrong_type(type_text: str):
    """A value the annotation cannot hold, or None when every value could fit."""
    options = {o.strip() for o in type_text.split("|")}
    if options & {"int", "float"} and not options & {"str"}:
        return "many"
    if "bool" in options and not options & {"str", "int", "float"}:
        return "yes"
    if options <= {"str", "None"}:
        return 3
    return None


@pytest.mark.parametrize("check_id", IDS)
def test_parameters_round_trip_and_are_documented(check_id):
    cls = CHECKS[check_id]
    check = cls()
    params = check.get_params()
    assert type(check)(**params).get_params() == params
    assert check.set_params(**params).get_params() == params
    specs = param_specs(cls)
    assert [s.name for s in specs] == list(params)
    for spec in specs:
        assert spec.type, f"{check_id}.{spec.name} has no type annotation"
        assert spec.doc and "\n" not in spec.doc, f"{check_id}.{spec.name} has no one-line meaning in param_docs"
    assert set(cls.param_docs) <= set(params), "param_docs names a parameter the constructor does not take"
    check.validate_params()  # the defaults are valid


@pytest.mark.parametrize("check_id", IDS)
def test_unknown_and_ill_typed_parameters_are_usage_errors(check_id):
    cls = CHECKS[check_id]
    with pytest.raises(UsageError, match="no parameter 'no_such_knob'"):
        cls().set_params(no_such_knob=1)
    with pytest.raises(UsageError, match="no parameter 'no_such_knob'") as info:
        normalise_params({check_id: {"no_such_knob": 1}})
    assert all(name in str(info.value) for name in cls().get_params())  # the valid names are listed
    for spec in param_specs(cls):
        bad = _wrong_type(spec.type)
        if bad is not None:
            with pytest.raises(UsageError, match=f"{check_id}.{spec.name} takes"):
                normalise_params({check_id: {spec.name: bad}})


@pytest.mark.parametrize("check_id", sorted(BAD_VALUES))
def test_values_the_check_refuses_are_refused_before_it_runs(check_id):
    if check_id not in CHECKS:
        pytest.skip(f"{check_id} is not registered")
    cls = CHECKS[check_id]
    for name, value in BAD_VALUES[check_id].items():
        params = normalise_params({check_id: {name: value}})[check_id]
        with pytest.raises(UsageError) as info:
            instantiate(cls, params)
        assert check_id in str(info.value) and "\n" not in str(info.value)


# -- ledger and metrics on small models ---------------------------------------------------------

# Smaller settings so that every check runs in seconds; they change how much work a check
# does, never what it reports or how it counts.
FAST = {
    "FM01.transfer": {"n_inputs": 20, "surrogate_epochs": 2},
    "FM02.availability": {"rates": [0.1], "steps": 3, "defences": ["sanitize"]},
    "FM02.clean_label": {"n_targets": 1, "steps": 5, "victim_seeds": 1, "defences": ["sanitize"]},
    "FM02.feedback_loop": {"fractions": [0.1], "rounds": 2, "n_targets": 1},
    "FM02.label_flip": {"rates": [0.1], "strategies": ["random"], "defences": ["sanitize"]},
    "FM02.regression": {"rates": [0.08], "steps": 10},
    "FM03.attribute_inference": {"sensitive_feature": 9, "n_records": 60},
    "FM03.reconstruction": {"steps": 5, "samples": 2, "classes": [0, 1]},
    "FM04.lira": {"n_reference": 2, "max_records": 100},
    "FM04.rmia": {"n_reference": 2, "max_records": 100, "n_population": 100},
    "FM04.shadow": {"n_shadow": 2, "max_records": 100},
    "FM05.equation_solving_mlp": {"restarts": 1, "max_iter": 50, "query_factor": 2.0},
    "FM05.learning": {"rounds": 2, "epochs": 2, "final_epochs": 2},
    "FM06.reprogramming": {"inner_size": 4, "n_train": 60, "n_test": 40, "steps": 5},
    "FM07.eot_patch": {"steps": 5, "n_inputs": 20},
    "FM07.eot_perturbation": {"steps": 5, "n_inputs": 10},
    "FM08.capacity_abuse": {"anchors": 16, "real_anchors": 16, "n_references": 3, "families": ["uniform"],
                            "architectures": ["mlp"]},
    "FM10.injection": {"kinds": ["patch"], "labels": ["dirty"], "n_eval": 100},
    "FM10.neural_cleanse": {"steps": 10, "n_images": 8},
    "FM16.corruption": {"n_inputs": 40, "severities": [1, 5]},
    "FM15.natural_adversarial": {"families": ["logreg"]},
    # Without conditions it is not applicable; these exercise every kind of condition.
    "FM17.operating_conditions": {"conditions": str(Path(__file__).parent.parent / "checks" / "fm17_blobs.conditions.yaml"),
                                  "n_inputs": 40},
}
SKIP: dict[str, str] = {}  # check id -> why it cannot run here (none today)


def _fit(x, y, k, seed=0, steps=120):
    import torch

    torch.manual_seed(seed)
    d = int(np.prod(x.shape[1:]))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, 16), torch.nn.ReLU(), torch.nn.Linear(16, k))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


#: Checks whose statistic compares one class with the others (not applicable to two classes).
THREE_CLASSES = {"FM10.spectral_signatures"}


def _quadrants(n):
    """12x12 one-channel images in four classes: the bright quadrant is the class (seed 0)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=n)
    x = rng.uniform(0.0, 0.5, size=(n, 1, 12, 12))
    for q in range(4):
        r, c = divmod(q, 2)
        x[y == q, :, r * 6:(r + 1) * 6, c * 6:(c + 1) * 6] += 0.4
    return x.clip(0, 1).astype(np.float32), y


@pytest.fixture(scope="module")
def counted():
    """Tabular and image models (torch, white-box, with a training recipe) that count, per
    ledger, every row they answer; models the recipe trains count too."""
    pytest.importorskip("torch")
    from redline.targets.torch import TorchTarget
    from redline_testkit import two_blobs

    seen: dict[int, int] = {}
    ledgers: list = []  # kept alive, so that ids stay unique

    class Counting(TorchTarget):
        def _count(self, rows):
            if not any(ledger is self.ledger for ledger in ledgers):
                ledgers.append(self.ledger)
            seen[id(self.ledger)] = seen.get(id(self.ledger), 0) + int(rows)

        def _predict(self, x):
            self._count(len(x))
            return super()._predict(x)

        def _predict_raw(self, x):
            self._count(raw_rows(x))
            return super()._predict_raw(x)

        def _torch_logits(self, x):
            self._count(x.shape[0])
            return super()._torch_logits(x)

    def make(kind):
        x, y = two_blobs(600, binary_tail=True) if kind == "tabular" else _quadrants(600)
        k = int(y.max()) + 1
        spec = InputSpec(shape=tuple(x.shape[1:]), lower=0.0, upper=1.0)

        def trainer(xs, ys, seed):
            return Counting(_fit(xs.astype(np.float32), ys, k, seed, steps=40), input_spec=spec, n_classes=k,
                            spec=f"test:{kind}-copy", trainer=trainer)

        target = Counting(_fit(x[:200], y[:200], k), input_spec=spec, n_classes=k, spec=f"test:{kind}", trainer=trainer)
        # A deployment sample too (no labels), which only checks that ask for the role may read.
        data = Dataset(kind, x[:200], y[:200], x[200:400], y[200:400], x[400:], y[400:], x_deploy=x[400:500],
                       spec=f"test:{kind}", modality=kind,
                       meta={"poisoned_indices": list(range(20))})  # for the data detectors
        return target, data

    def regression():
        """Ridge on the bundled diabetes data; the adapter class counts, as copies share it."""
        from sklearn.linear_model import Ridge

        from redline.data import load_data
        from redline.targets import load_target
        from redline.targets.regression import SklearnRegressorTarget

        data = load_data("builtin:diabetes")
        plain = SklearnRegressorTarget._predict

        def counting(self, x):
            Counting._count(self, len(x))
            return plain(self, x)

        SklearnRegressorTarget._predict = counting
        return load_target(Ridge(alpha=1.0).fit(data.x_train, data.y_train), data=data), data, plain

    def agents():
        """Per agent mode, a counting zoo agent in the world it is a control for (built on first use)."""
        pytest.importorskip("gymnasium")
        from redline import zoo
        from redline.targets.policy import CallablePolicy

        class CountingPolicy(CallablePolicy):
            def _predict(self, x):
                Counting._count(self, len(x))
                return super()._predict(x)

        out = {}
        for mode, name in (("FM12", "boatrace_q_reward"), ("FM13", "vase_q_reward"), ("FM14", "lava_q_reward")):
            agent = zoo.load_target(name)
            out[mode] = (CountingPolicy(agent.policy, input_spec=agent.input_spec, n_actions=agent.n_classes,
                                        spec=agent.spec), zoo.load_data_for(name))
        return out

    target, data, plain = regression()
    yield {"tabular": make("tabular"), "image": make("image"), "regression": (target, data), "seen": seen,
           "control": agents}
    from redline.targets.regression import SklearnRegressorTarget

    SklearnRegressorTarget._predict = plain


def _declared(name: str, patterns) -> bool:
    base = name[:-3] if name.endswith("_ci") else name  # a rate may carry its interval as <name>_ci
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(base, p) for p in patterns)


@pytest.mark.parametrize("check_id", IDS)
def test_ledger_matches_what_the_model_answered_and_metrics_are_declared(check_id, counted):
    if check_id in SKIP:
        pytest.skip(SKIP[check_id])
    cls = CHECKS[check_id]
    kind = "regression" if cls.needs.task == "regression" else "image" if cls.needs.modality == ("image",) else "tabular"
    if check_id in THREE_CLASSES:  # the tabular model has two classes, the image model four
        kind = "image"
    if cls.needs.task == "control":  # an agent check: a policy in an environment
        target, data = counted["control"]()[cls.mode]
    else:
        target, data = counted[kind]
    check = instantiate(cls, normalise_params({check_id: FAST.get(check_id, {})})[check_id])

    ledgers = []
    run = check.run

    def spy(tgt, *args, **kwargs):  # the ledger Check.__call__ hands the run
        ledgers.append(tgt.ledger)
        return run(tgt, *args, **kwargs)

    check.run = spy
    finding = check(target, data, budget=2000, seed=0)
    assert finding.status is not Status.ERROR, finding.reason
    assert finding.status is not Status.NOT_APPLICABLE, f"the small model no longer exercises it: {finding.reason}"
    answered = counted["seen"].get(id(ledgers[0]), 0)
    assert finding.queries + finding.evaluation_queries == answered
    undeclared = [m for m in finding.metrics if not _declared(m, cls.metrics)]
    assert not undeclared, f"{check_id} reports metrics it does not declare: {undeclared}"


def test_triage_rules_read_only_declared_metrics():
    """Each mode's rules read only metrics that a producer of that mode declares: its checks,
    or the static scan (FM09) and the dependency audit (FM11.deps) outside the registry."""
    from redline.triage.rules import FINDING_FIELDS, load_rules
    from redline.triage.context import FACTS
    from redline.triage.vocabulary import declarations, is_declared

    book = load_rules()
    declared = declarations()
    checked = 0
    for code, rules in book.modes.items():
        if code not in declared:
            continue  # nothing produces findings of the mode yet (FM12+); any declared name may be read
        names = set()
        for rule in (*rules.rules, rules.default):
            if rule.when is not None:
                names |= rule.when.names
            names |= rule.evidence.names
        metric_names = {n for n in names if n not in FACTS and not (n in FINDING_FIELDS and not is_declared(n))}
        unknown = [n for n in metric_names if not is_declared(n, code)]
        assert not unknown, f"{code} rules read metrics no {code} producer declares: {unknown}"
        checked += 1
    assert checked >= 10


def test_a_bad_value_in_a_direct_call_is_a_one_line_error_finding(linear_target, blob_data):
    """Python callers who build a check themselves get the same message, not a traceback."""
    finding = CHECKS["FM04.threshold"](score="nope")(linear_target, blob_data, budget=100)
    assert finding.status is Status.ERROR and finding.queries + finding.evaluation_queries == 0
    assert finding.reason.startswith("FM04.threshold: score must be one of") and "traceback" not in finding.evidence
    assert linear_target.answered == 0
