"""guard.yaml: loading, one-line errors naming the key, defences found by policy_key."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import Defence, DefendedTarget, MemoryState
from redline.defences.labels_only import LabelsOnly
from redline.defences.policy import defence_classes, hash_key, load_policy, parse_policy
from redline.defences.rounding import Rounding
from redline.defences.squeezing import Squeezing
from redline.errors import UsageError

ALICE = hashlib.sha256(b"alice-secret").hexdigest()


class PerClientTag(Defence):
    """A test-local defence: remembers its client, keeps a counter in the state store."""

    policy_key = "test_policy_tag"

    def __init__(self, tag: str, step: float = 1.0):
        self.tag = tag
        self.step = step
        self.client, self.state = None, None

    def for_client(self, client, state):
        clone = PerClientTag(self.tag, self.step)
        clone.client, clone.state = client, state
        return clone

    def transform_output(self, x, scores):
        self.state.incr(f"{self.tag}:{self.client}", self.step)
        return scores


class InheritsTheKey(PerClientTag):
    """Inherits policy_key without declaring its own: not a second claimant."""


def write(tmp_path, text):
    path = tmp_path / "guard.yaml"
    path.write_text(text)
    return path


def test_existing_defences_and_a_test_local_one_are_found_by_their_key():
    classes = defence_classes()
    assert classes["labels_only"] is LabelsOnly
    assert classes["round"] is Rounding
    assert classes["squeeze"] is Squeezing
    assert classes["test_policy_tag"] is PerClientTag


def test_a_full_policy_loads(tmp_path):
    path = write(tmp_path, f"""
version: 1
upstream: http://127.0.0.1:8000/predict
clients:
  - {{name: alice, key_sha256: "{ALICE.upper()}"}}
limits: {{max_body_bytes: 1000, max_batch: 4, upstream_timeout_s: 2.5}}
state: sqlite:///state/guard.db
audit_log: logs/audit.jsonl
input: {{shape: [3], lower: 0, upper: 1}}
defences:
  - squeeze: {{levels: 5}}
  - test_policy_tag: {{tag: t}}
  - round: {{decimals: 2}}
  - labels_only
""")
    policy = load_policy(path)
    assert policy.upstream == "http://127.0.0.1:8000/predict"
    assert [(c.name, c.key_sha256) for c in policy.clients] == [("alice", ALICE)]
    assert (policy.limits.max_body_bytes, policy.limits.max_batch, policy.limits.upstream_timeout_s) == (1000, 4, 2.5)
    assert policy.limits.body_timeout_s == 10.0  # the default
    assert policy.state == "sqlite:///" + str(tmp_path.resolve() / "state" / "guard.db")
    assert policy.audit_log == tmp_path.resolve() / "logs" / "audit.jsonl"
    assert policy.input_spec.shape == (3,)
    assert [key for key, _ in policy.entries] == ["squeeze", "test_policy_tag", "round", "labels_only"]
    assert policy.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert hash_key("alice-secret") == ALICE


def test_defences_for_a_client_are_in_defended_target_order_with_their_own_state():
    policy = parse_policy({"defences": [{"round": {"decimals": 1}}, {"test_policy_tag": {"tag": "t", "step": 2}}]})
    state = MemoryState()
    served = policy.defences_for("alice", state)
    # the file lists the client side first; DefendedTarget lists the model side first
    assert [type(d) for d in served] == [PerClientTag, Rounding]
    assert served[0].client == "alice" and served[0].state is state
    assert served[1] is policy.defences[0]  # a stateless defence is shared

    target = ArrayTarget(np.eye(3), np.zeros(3))
    defended = policy.defend(target, "bob", state)
    assert isinstance(defended, DefendedTarget)
    out = defended.predict(np.array([[0.0, 1.0, 0.0]], np.float32))
    assert np.all(out == np.round(out, 1))
    assert state.incr("t:bob", 0) == 2.0


def test_the_file_order_is_the_order_a_request_meets_the_defences():
    # squeeze then labels_only (as a client meets them) equals DefendedTarget([labels, squeeze])
    policy = parse_policy({"defences": [{"squeeze": {"levels": 2}}, "labels_only"]})
    target = ArrayTarget(np.eye(2), np.zeros(2))
    x = np.array([[0.4, 0.45], [0.6, 0.2]], np.float32)
    by_hand = DefendedTarget(target, [LabelsOnly(), Squeezing(levels=2)]).predict(x)
    assert np.array_equal(policy.defend(target).predict(x), by_hand)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "guard.yaml: the guard policy must be a mapping"),
    ("version: 2", "guard.yaml: version: this redline reads policy version 1, not 2"),
    ("colour: red", "guard.yaml: colour: unknown key"),
    ("upstream: ftp://x/y", "guard.yaml: upstream: must be an http:// or https:// URL"),
    ("clients: [{name: alice}]", "guard.yaml: clients[0].key_sha256: must be the 64 hex digits"),
    ("clients: [{name: alice, key_sha256: secret-key}]", "guard.yaml: clients[0].key_sha256: must be the 64 hex digits"),
    ("clients: [{name: 'a b', key_sha256: '" + ALICE + "'}]", "guard.yaml: clients[0].name: must be 1-64 letters"),
    ("clients: [{name: a, key_sha256: '" + ALICE + "'}, {name: b, key_sha256: '" + ALICE + "'}]",
     "guard.yaml: clients[1]: clients 'a' and 'b' have the same key"),
    ("clients: [{name: a, key_sha256: '" + ALICE + "', key: x}]", "guard.yaml: clients[0].key: unknown key"),
    ("limits: {max_batch: 0}", "guard.yaml: limits.max_batch: must be a whole number of at least 1"),
    ("limits: {max_body_bytes: true}", "guard.yaml: limits.max_body_bytes: must be a whole number"),
    ("limits: {upstream_timeout_s: -1}", "guard.yaml: limits.upstream_timeout_s: must be a number of seconds"),
    ("limits: {rows: 3}", "guard.yaml: limits.rows: unknown key"),
    ("state: postgres://x", "guard.yaml: state: must be memory, sqlite:///FILE or redis://"),
    ("state: 'sqlite://'", "guard.yaml: state: a SQLite store is sqlite:///FILE"),
    ("input: {lower: 0}", "guard.yaml: input.shape: is required"),
    ("input: {shape: [0]}", "guard.yaml: input.shape: must be a non-empty list of positive integers"),
    ("defences: {round: {}}", "guard.yaml: defences: must be a list"),
    ("defences: [{no_such_defence: {}}]", "guard.yaml: defences[0]: unknown defence 'no_such_defence' (known: "),
    ("defences: [{round: {bits: 2}}]", "guard.yaml: defences[0].round: unknown parameter 'bits' (expected: decimals)"),
    ("defences: [{round: 2}]", "guard.yaml: defences[0].round: must be a mapping, got int"),
    ("defences: [{round: {}, squeeze: {}}]", "guard.yaml: defences[0]: must be one policy_key: {parameters} entry"),
    ("defences: [{test_policy_tag: {}}]", "guard.yaml: defences[0].test_policy_tag: missing parameter 'tag'"),
    ("defences: [round, {round: {decimals: 1}}, {test_policy_tag: {tag: t, size: 3}}]",
     "guard.yaml: defences[2].test_policy_tag: unknown parameter 'size' (expected: tag, step)"),
    ("a: [b", "guard.yaml"),
])
def test_bad_policies_are_one_line_errors_naming_the_key(tmp_path, text, message):
    with pytest.raises(UsageError) as err:
        load_policy(write(tmp_path, text))
    text_of = str(err.value).replace(str(tmp_path / "guard.yaml"), "guard.yaml")
    assert text_of.startswith(message), text_of
    assert "\n" not in text_of


def test_defence_checks_name_the_entry():
    policy = parse_policy({"defences": [{"round": {"decimals": -1}}]}, source="g.yaml")
    with pytest.raises(UsageError, match=r"^g.yaml: defences\[0\].round: rounding needs a whole number"):
        policy.check(ArrayTarget(np.eye(2), np.zeros(2)))


def test_keys_added_from_a_keys_file_must_not_clash():
    policy = parse_policy({"clients": [{"name": "alice", "key_sha256": ALICE}]})
    from redline.defences.policy import Client

    grown = policy.with_clients([Client("bob", hash_key("bob-secret"))], "keys.txt")
    assert [c.name for c in grown.clients] == ["alice", "bob"]
    with pytest.raises(UsageError, match="keys.txt: client 'alice' is declared twice"):
        policy.with_clients([Client("alice", hash_key("x"))], "keys.txt")
    with pytest.raises(UsageError, match="keys.txt: clients 'alice' and 'carol' have the same key"):
        policy.with_clients([Client("carol", ALICE)], "keys.txt")


def test_a_second_class_claiming_a_key_is_refused():
    class Impostor(Defence):
        policy_key = "round"

    try:
        with pytest.raises(UsageError, match="two defences claim the policy key 'round'"):
            defence_classes()
    finally:
        Impostor.policy_key = None
        del Impostor
        import gc

        gc.collect()
    assert defence_classes()["round"] is Rounding


def test_a_policy_path_to_a_fifo_a_device_or_a_huge_file_is_refused_without_reading_it(tmp_path):
    import os
    import tracemalloc

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: never
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NUL bytes on no disk
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match="is larger than"):
            load_policy(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"{peak:,} bytes held to refuse a 64 MiB policy"  # read up to the limit only
    for path, message in ((huge, "is larger than"), (fifo, "is not a regular file"),
                          ("/dev/zero", "is not a regular file"), (tmp_path / "gone.yaml", "does not exist")):
        with pytest.raises(UsageError, match=message) as err:
            load_policy(path)
        assert "\n" not in str(err.value)
