"""The model-stealing monitor: PRADA flags synthetic query streams, the budget locks out volume,
honest natural traffic passes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redline_testkit
from redline_testkit import ArrayTarget

from redline.defences import DefendedTarget, LockedOut, MemoryState, collect_events
from redline.defences.extraction_monitor import ExtractionMonitor
from redline.defences.policy import defence_classes
from redline.errors import UsageError
from redline.targets.base import InputSpec


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits scaled to [0, 1], shuffled: natural inputs of 64 features."""
    from sklearn.datasets import load_digits

    x = (load_digits().data / 16.0).astype(np.float32)
    return x[np.random.default_rng(0).permutation(len(x))]


def digits_target():
    rng = np.random.default_rng(0)
    target = ArrayTarget(rng.normal(size=(64, 10)), rng.normal(size=10), spec="test:digits")
    target.input_spec = InputSpec(shape=(64,), lower=0.0, upper=1.0)
    return target


def monitor(**params) -> ExtractionMonitor:
    m = ExtractionMonitor(**params)
    m.check(digits_target())
    return m


def jacobian_like(seeds: np.ndarray, rounds: int, step: float, rng) -> np.ndarray:
    """Papernot-style augmentation: every round, each owned input moved by ``step`` along a
    sign vector (the gradient's sign, here random), doubling the set."""
    owned = seeds
    for _ in range(rounds):
        moved = np.clip(owned + step * np.sign(rng.normal(size=owned.shape)), 0, 1)
        owned = np.concatenate([owned, moved])
    return owned.astype(np.float32)


def send(defended, rows, batch=16):
    sent = 0
    for start in range(0, len(rows), batch):
        defended.predict(rows[start:start + batch])
        sent += len(rows[start:start + batch])
    return sent


def test_a_jacobian_augmentation_stream_is_flagged_by_prada_and_locked_out(digits):
    stream = jacobian_like(digits[:10], rounds=5, step=0.1, rng=np.random.default_rng(1))  # 320 rows
    defended = DefendedTarget(digits_target(), [monitor()])
    sent = 0
    with collect_events() as events, pytest.raises(LockedOut) as refused:
        for start in range(0, len(stream), 16):
            defended.predict(stream[start:start + 16])
            sent += 16
    flagged = [e for e in events if e["event"] == "flagged"]
    assert flagged and flagged[0]["test"] == "prada" and flagged[0]["w"] < 0.75
    assert [e["event"] for e in events][-1] == "locked_out"
    assert sent <= 176  # decided once it had min_queries (100) distances, within a few batches
    assert refused.value.status == 403 and refused.value.detail["retry_after_s"] > 3500
    with pytest.raises(LockedOut):  # from now on the account gets nothing, natural inputs included
        defended.predict(digits[1000:1001])


def test_honest_natural_traffic_is_not_flagged(digits):
    defended = DefendedTarget(digits_target(), [monitor()])
    with collect_events() as events:
        sent = send(defended, digits[:600])
    assert sent == 600
    assert not [e for e in events if e["event"] in ("flagged", "locked_out")]


def test_exact_repeats_are_not_distances(digits):
    m = monitor().for_client("alice", MemoryState())
    labels = np.zeros(40, int)
    first = m.distances(digits[:20], labels[:20])
    again = m.distances(digits[:20], labels[:20])  # the same rows sent again: retries
    assert len(first) == 19 and all(d > 0 for _, d in first)  # the class's first row has nothing to compare
    assert again == []


def test_the_budget_counts_distinct_rows_and_locks_out_past_it(digits):
    defended = DefendedTarget(digits_target(), [monitor(shapiro_below=None, max_rows=50)])
    with collect_events() as events:
        send(defended, digits[:50], batch=10)
        send(defended, digits[:50], batch=25)  # retries are free
        with pytest.raises(LockedOut):
            defended.predict(digits[50:52])  # the 51st distinct row is one too many
    flagged = [e for e in events if e["event"] == "flagged"]
    assert len(flagged) == 1 and flagged[0]["test"] == "budget" and flagged[0]["rows"] == 52
    with pytest.raises(LockedOut):
        defended.predict(digits[:1])


def test_accounts_are_apart_and_twins_of_one_account_share_the_store(digits):
    m, state = monitor(shapiro_below=None, max_rows=30), MemoryState()
    alice_1 = DefendedTarget(digits_target(), [m.for_client("alice", state)])
    alice_2 = DefendedTarget(digits_target(), [m.for_client("alice", state)])  # another worker
    bob = DefendedTarget(digits_target(), [m.for_client("bob", state)])
    send(alice_1, digits[:20])
    send(bob, digits[:30])  # bob's rows do not count for alice
    with pytest.raises(LockedOut):
        send(alice_2, digits[20:40])


def test_the_policy_finds_it_and_bad_parameters_are_usage_errors():
    assert defence_classes()["extraction_monitor"] is ExtractionMonitor
    for params in ({"shapiro_below": 1.5}, {"max_rows": 0}, {"min_queries": 2}, {"lockout_s": 0},
                   {"shapiro_below": None, "max_rows": None}, {"window": 50, "min_queries": 100},
                   {"max_rows": True}):
        with pytest.raises(UsageError):
            monitor(**params)
    with pytest.raises(UsageError):  # no check(target) yet
        ExtractionMonitor().observe(np.zeros((1, 64)), np.zeros((1, 10)))


def test_a_guard_policy_runs_it_after_the_answer_whatever_the_output_hardening(digits):
    from redline.defences.policy import parse_policy

    policy = parse_policy({"defences": [{"extraction_monitor": {"shapiro_below": None, "max_rows": 20}},
                                        "labels_only"]})
    policy.check(digits_target())
    defended = policy.defend(digits_target(), client="alice")
    assert np.asarray(defended.predict(digits[:20])).ndim == 1  # labels reach the client
    with pytest.raises(LockedOut):
        defended.predict(digits[20:21])
    # PRADA reads labels as well as probabilities
    m = monitor(min_queries=10, window=10).for_client("bob", MemoryState())
    m.observe(digits[:30], np.arange(30) % 2)
    assert len(np.frombuffer(m._store().get(m._key("dw")), "<f4")) == 10  # the window holds its last 10


def test_prada_refuses_an_unbounded_input_instead_of_going_blind():
    # Features scaled by infinite bounds are all NaN: every distance would be alike and W
    # would never fall; the budget alone does not scale features, so it may run unbounded.
    target = digits_target()
    target.input_spec = InputSpec(shape=(64,), lower=float("-inf"), upper=float("inf"))
    with pytest.raises(UsageError, match="not finite"):
        ExtractionMonitor().check(target)
    budget_only = ExtractionMonitor(shapiro_below=None, max_rows=10)
    budget_only.check(target)
    budget_only.transform_input(np.full((3, 64), 1e9))


def test_growing_sets_stored_under_another_input_shape_are_ignored(digits, tmp_path):
    # A lasting state store (sqlite:///path, redis) outlives a policy whose input shape changed:
    # the old rows are not the new model's queries, and must not break every request.
    from redline.guard.stores import close_store, open_store

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        wide = monitor().for_client("alice", store)
        wide.observe(digits[:5], np.eye(10)[[0] * 5])
        narrow_target = ArrayTarget(np.ones((32, 10)), np.zeros(10), spec="test:narrow")
        narrow_target.input_spec = InputSpec(shape=(32,), lower=0.0, upper=1.0)
        narrow = ExtractionMonitor()
        narrow.check(narrow_target)
        narrow = narrow.for_client("alice", store)
        assert narrow.distances(digits[5:10, :32], np.zeros(5, int)) != []  # compared with its own rows only
    finally:
        close_store(store)


def test_an_idle_accounts_state_expires_after_memory_s(digits):
    now = [0.0]
    state = MemoryState(clock=lambda: now[0])
    m = monitor(memory_s=100.0, max_rows=10_000).for_client("idle", state)
    defended = DefendedTarget(digits_target(), [m])
    send(defended, digits[:200])
    assert any(k.startswith("extraction_monitor:idle:g:") for k in state._data)
    now[0] = 101.0  # every key, the growing sets and distances included, is gone for a silent account
    assert not [k for k in list(state._data) if state._live(k) is not None]


def _reference_distances(m, state, flat, labels):
    """PRADA's step one row at a time, as the paper states it (the check computes it in blocks)."""
    from redline.defences.extraction_monitor import _digest

    quantised = np.rint(np.clip(flat, 0, 1) * 255).astype(np.float64)
    out, sets = [], state.setdefault("sets", {})
    for i, (row, label) in enumerate(zip(quantised, labels)):
        digest = _digest(flat[i])
        if digest in state.setdefault("seen", set()):
            continue
        state["seen"].add(digest)
        grown = sets.get(label)
        if grown is None:
            sets[label] = row[None]
            continue
        d = float(np.sqrt(((grown - row) ** 2).sum(axis=1).min())) / 255.0
        out.append((i, d))
        n, s, q, t = state.setdefault(("stats", label), [0, 0.0, 0.0, 0.0])
        if d > t:
            sets[label] = np.concatenate([grown, row[None]])[-m.growing:]
            n, s, q = n + 1, s + d, q + d * d
            mean = s / n
            t = max(t, mean - float(np.sqrt(max(0.0, q / n - mean * mean))))
            state[("stats", label)] = [n, s, q, t]
    return out


@pytest.mark.parametrize("growing, batch", [(1000, 64), (7, 16), (3, 50)])
def test_block_distances_equal_the_row_by_row_definition(digits, growing, batch):
    m = monitor(growing=growing).for_client("c", MemoryState())
    rng = np.random.default_rng(growing)
    rows = np.concatenate([digits[:150], digits[:20], np.clip(digits[30:80] + 0.02, 0, 1)]).astype(np.float32)
    rows = rows[rng.permutation(len(rows))]
    labels = rng.integers(0, 3, size=len(rows))
    got, want, reference_state = [], [], {}
    for start in range(0, len(rows), batch):
        block = rows[start:start + batch]
        got += [(start + i, d) for i, d in m.distances(block.reshape(len(block), -1), labels[start:start + batch])]
        want += [(start + i, d) for i, d in _reference_distances(m, reference_state, block, labels[start:start + batch])]
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([d for _, d in got], [d for _, d in want], rtol=1e-9, atol=1e-12)


# -- the out-of-domain test ---------------------------------------------------------------------
def image_target():
    target = digits_target()
    target.input_spec = InputSpec(shape=(1, 8, 8), lower=0.0, upper=1.0)
    return target


@pytest.fixture(scope="module")
def domain_split(digits, tmp_path_factory):
    """The first 900 digits as the operator's reference (an .npz), the rest held out."""
    images = digits.reshape(-1, 1, 8, 8)
    path = tmp_path_factory.mktemp("domain") / "reference.npz"
    np.savez(path, x_train=images[:900], y_train=np.zeros(900, int))
    return str(path), images[900:]


@pytest.fixture(scope="module")
def photo_patches():
    """Grey crops of scikit-learn's sample photos at 8x8: the natural images of another
    domain that a KnockoffNets thief without digits would send."""
    return redline_testkit.photo_patches(300, seed=5)


def domain_monitor(reference, **params) -> ExtractionMonitor:
    m = ExtractionMonitor(shapiro_below=None, reference=reference, **params)
    m.check(image_target())
    return m


def corrupted(rows, rng):
    """The honest corruptions of the detection benchmark's clients: noise, blur, brightness."""
    out = rows.astype(np.float64).copy()
    for i in range(len(out)):
        kind = i % 4
        if kind == 1:
            out[i] += rng.normal(0, 0.08, out[i].shape)
        elif kind == 2:
            padded = np.pad(out[i], ((0, 0), (1, 1), (1, 1)), mode="edge")
            out[i] = 0.5 * out[i] + 0.5 * sum(padded[:, a:a + 8, b:b + 8] for a in range(3) for b in range(3)) / 9
        elif kind == 3:
            out[i] += rng.choice([-0.2, 0.2])
    return np.clip(out, 0, 1).astype(np.float32)


def test_an_account_sending_photos_is_flagged_out_of_domain_and_locked_out_before_any_answer(domain_split,
                                                                                               photo_patches):
    reference, _ = domain_split
    target = image_target()
    defended = DefendedTarget(target, [domain_monitor(reference)])
    with collect_events() as events, pytest.raises(LockedOut) as refused:
        send(defended, photo_patches, batch=32)
    flagged = [e for e in events if e["event"] == "flagged"]
    assert flagged and flagged[0]["test"] == "domain"
    assert flagged[0]["rows"] == 20 and flagged[0]["outside"] >= 10  # decided at domain_min_rows
    assert [e["event"] for e in events][-1] == "locked_out"
    assert target.answered == 0  # the batch that tipped the test was refused, not answered
    assert refused.value.status == 403
    with pytest.raises(LockedOut):
        defended.predict(domain_split[1][:1])


def test_held_out_digits_under_common_corruptions_are_in_domain_and_never_flagged(domain_split):
    reference, held = domain_split
    rng = np.random.default_rng(3)
    honest = np.concatenate([held, corrupted(held, rng)])  # 1794 distinct rows, half corrupted
    m = domain_monitor(reference)
    assert m._domain_.outside(held).mean() < 0.03 and m._domain_.outside(honest).mean() < 0.03
    defended = DefendedTarget(image_target(), [m])
    with collect_events() as events:
        sent = send(defended, honest[rng.permutation(len(honest))], batch=16)
    assert sent == len(honest)
    assert not [e for e in events if e["event"] in ("flagged", "locked_out")]


def test_a_few_odd_inputs_and_retries_of_one_odd_input_are_not_flagged(domain_split, photo_patches):
    reference, held = domain_split
    defended = DefendedTarget(image_target(), [domain_monitor(reference)])
    with collect_events() as events:
        send(defended, np.concatenate([photo_patches[:8], held[:12]]))  # 8 of the first 20 odd
        send(defended, held[12:200])
        send(defended, np.repeat(photo_patches[8:9], 40, axis=0))  # one odd input, retried: one row
        send(defended, held[200:300])
    assert not [e for e in events if e["event"] == "flagged"]
    # the same account is flagged once its odd rows become a share no honest client sends
    with collect_events() as events, pytest.raises(LockedOut):
        send(defended, photo_patches[10:300])
    flagged = [e for e in events if e["event"] == "flagged"]
    assert flagged[0]["test"] == "domain" and flagged[0]["outside"] < 80


def test_the_sequential_test_keeps_its_level_however_long_an_honest_account_queries():
    from redline.defences.domain import log_evidence

    # 4000 accounts of 400 rows each, outside at exactly the null share, tested after every row
    rng = np.random.default_rng(0)
    outside = np.cumsum(rng.random((4000, 400)) < 0.05, axis=1)
    rows = np.broadcast_to(np.arange(1, 401), outside.shape)
    ever = (log_evidence(rows, outside, 0.05) >= np.log(1 / 0.01)).any(axis=1).mean()
    assert ever <= 0.01  # Ville's inequality: at most alpha, whatever the number of looks
    # and it has power: 30% outside is rejected at alpha 1e-6 within 100 rows
    assert log_evidence(100, 30, 0.05) >= np.log(1e6) > log_evidence(100, 10, 0.05)


def test_out_of_domain_settings_and_references_are_checked(domain_split, tmp_path):
    reference, _ = domain_split
    for params in ({"reference": ""}, {"domain_share": 0.01}, {"domain_alpha": 0.0}, {"domain_quantile": 1.0},
                   {"domain_min_rows": 0}, {"max_reference": 5}, {"domain_share": True}):
        with pytest.raises(UsageError):
            domain_monitor(params.pop("reference", reference), **params)
    with pytest.raises(UsageError, match="reference"):
        domain_monitor(str(tmp_path / "missing.npz"))
    few = tmp_path / "few.npz"
    np.savez(few, x_train=np.zeros((5, 1, 8, 8)), y_train=np.zeros(5, int))
    with pytest.raises(UsageError, match="at least 20"):
        domain_monitor(str(few))
    with pytest.raises(UsageError, match="shape"):  # the flat 64-feature model does not take 8x8 images
        ExtractionMonitor(shapiro_below=None, reference=reference).check(digits_target())
    ExtractionMonitor(shapiro_below=None, max_rows=None, reference=reference).check(image_target())  # alone


def test_redline_guard_check_validates_the_reference(domain_split, tmp_path, capsys):
    from redline.cli import main

    reference, _ = domain_split
    policy = ("version: 1\ninput: {shape: [1, 8, 8], lower: 0, upper: 1}\ndefences:\n"
              "  - extraction_monitor: {max_rows: 1000, reference: %s}\n")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(policy % f"'npz:{reference}'")
    bad.write_text(policy % f"'npz:{tmp_path / 'nowhere.npz'}'")
    assert main(["guard", "--check", str(good)]) == 0
    capsys.readouterr()
    assert main(["guard", "--check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "extraction_monitor" in err and "reference" in err and err.count("\n") == 1


def test_only_rows_new_to_the_account_count_as_domain_evidence(domain_split, photo_patches):
    reference, held = domain_split
    m = domain_monitor(reference, domain_min_rows=1000).for_client("carol", MemoryState())
    counts = lambda: (m._store().incr(m._key("dn"), 0.0), m._store().incr(m._key("dk"), 0.0))
    m.transform_input(np.concatenate([held[:10], photo_patches[:5]]))
    assert counts() == (15.0, 5.0)
    # 5 photos and 10 digits sent before, 3 new photos, 2 new digits, one new digit twice
    again = np.concatenate([photo_patches[:8], held[:12], held[11:12]])
    m.transform_input(again[np.random.default_rng(0).permutation(len(again))])
    assert counts() == (20.0, 8.0)


def test_a_table_is_scored_in_standardised_features(tmp_path):
    from redline.data import load_data

    cancer = load_data("builtin:breast_cancer")  # 30 features min-max scaled to [0, 1]
    np.savez(tmp_path / "cancer.npz", x_train=np.concatenate([cancer.x_train, cancer.x_test]),
             y_train=np.concatenate([cancer.y_train, cancer.y_test]))
    target = ArrayTarget(np.random.default_rng(0).normal(size=(30, 2)), np.zeros(2), spec="test:cancer")
    target.input_spec = InputSpec(shape=(30,), lower=0.0, upper=1.0)
    m = ExtractionMonitor(shapiro_below=None, reference=f"npz:{tmp_path / 'cancer.npz'}")
    m.check(target)
    honest = DefendedTarget(target, [m.for_client("clinic", MemoryState())])
    with collect_events() as events:
        send(honest, cancer.x_pool)  # held-out patients
    assert not events
    noise = DefendedTarget(target, [m.for_client("thief", MemoryState())])
    with pytest.raises(LockedOut):
        send(noise, np.random.default_rng(1).random((100, 30)))


def test_rows_with_nan_or_infinity_count_as_outside_and_blank_canvases_as_nothing(domain_split, photo_patches):
    # A NaN pixel must not turn a photo into in-domain dilution; a blank canvas (one value
    # everywhere) is as far from every digit as from every photo, so it counts neither way.
    reference, held = domain_split
    broken = held[:30].astype(np.float64).copy()
    broken[:, 0, 0, 0] = np.nan
    alice = domain_monitor(reference).for_client("alice", MemoryState())
    with pytest.raises(LockedOut):
        for k in range(0, 30, 5):
            alice.transform_input(broken[k:k + 5])
    blanks = np.stack([np.full((1, 8, 8), level) for level in np.linspace(0, 1, 40)])
    bob = domain_monitor(reference).for_client("bob", MemoryState())
    with collect_events() as events:
        for k in range(0, 40, 4):
            bob.transform_input(blanks[k:k + 4])
        bob.transform_input(held[:20])
    assert not [e for e in events if e["event"] == "flagged"]


def test_a_lock_out_that_expires_does_not_give_the_thief_a_fresh_start(domain_split, photo_patches):
    reference, _ = domain_split
    m = domain_monitor(reference, lockout_s=60.0)
    clock = [1000.0]
    m.clock = lambda: clock[0]
    alice = m.for_client("alice", MemoryState())
    with pytest.raises(LockedOut):
        for k in range(30):
            alice.transform_input(photo_patches[k:k + 1])
    clock[0] += 61.0  # the lock-out expires; the evidence does not
    with pytest.raises(LockedOut):
        alice.transform_input(photo_patches[100:101])


def test_blank_empty_or_oversized_references_are_usage_errors(tmp_path):
    blank = tmp_path / "blank.npz"
    np.savez(blank, x_train=np.zeros((50, 1, 8, 8)), y_train=np.zeros(50, int))
    with pytest.raises(UsageError, match="blank or all alike"):
        domain_monitor(str(blank))
    empty = tmp_path / "empty.npz"
    np.savez(empty, x_train=np.zeros((0, 1, 8, 8)), y_train=np.zeros(0, int))
    with pytest.raises(UsageError, match="no rows"):
        domain_monitor(str(empty))
    with pytest.raises(UsageError, match="at most 20,000"):
        domain_monitor(str(blank), max_reference=10**6)


def test_a_flat_image_input_is_scored_as_an_image_when_its_layout_is_named(domain_split, photo_patches):
    # The digits MLP takes 64 values: as table columns, honest blur and noise would look
    # foreign; with domain_layout the test sees the 8x8 image it is.
    reference, held = domain_split
    flat_reference = str(Path(reference).with_name("flat.npz"))
    np.savez(flat_reference, x_train=np.load(reference)["x_train"].reshape(-1, 64), y_train=np.zeros(900, int))
    m = ExtractionMonitor(shapiro_below=None, reference=flat_reference, domain_layout=[1, 8, 8])
    m.check(digits_target())
    honest = m.for_client("alice", MemoryState())
    with collect_events() as events:
        honest.transform_input(corrupted(held[:400], np.random.default_rng(4)).reshape(-1, 64))
    assert not [e for e in events if e["event"] == "flagged"]
    thief = m.for_client("mallory", MemoryState())
    with pytest.raises(LockedOut):
        thief.transform_input(photo_patches[:40].reshape(-1, 64))
    for layout in ([8, 9], [64], "1x8x8", [1, 8, True]):
        with pytest.raises(UsageError, match="domain_layout"):
            ExtractionMonitor(shapiro_below=None, reference=flat_reference, domain_layout=layout).check(digits_target())


def test_near_copies_are_one_piece_of_evidence_for_the_honest_and_for_the_thief(domain_split, photo_patches):
    reference, held = domain_split
    m = domain_monitor(reference)
    # An honest client whose one odd photo (outside) is taken again and again, slightly noisy.
    odd = held[np.flatnonzero(m._domain_.outside(held))[0]]
    retakes = np.clip(odd[None] + np.random.default_rng(2).normal(0, 0.02, (40, *odd.shape)), 0, 1)
    honest = m.for_client("alice", MemoryState())
    with collect_events() as events:
        honest.transform_input(held[100:200])
        for k in range(0, 40, 4):
            honest.transform_input(retakes[k:k + 4])
    assert not [e for e in events if e["event"] == "flagged"]
    # A thief padding each photo with jittered copies of one digit: the copies are one digit.
    jitter = np.random.default_rng(3)
    thief = m.for_client("mallory", MemoryState())
    with pytest.raises(LockedOut):
        for photo in photo_patches[:60]:
            padding = np.clip(held[:1] + jitter.normal(0, 1e-4, (19, *held.shape[1:])), 0, 1)
            thief.transform_input(np.concatenate([padding, photo[None]]))


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 11, 20, 99, 100, 101, 1000, 4999])
def test_shapiro_w_is_scipys_w(n):
    from scipy.stats import shapiro

    from redline.defences.extraction_monitor import shapiro_w

    rng = np.random.default_rng(n)
    for x in (rng.normal(size=n), rng.exponential(size=n), np.round(rng.normal(size=n), 1), rng.uniform(size=n) ** 4):
        assert shapiro_w(x) == pytest.approx(float(shapiro(x).statistic), abs=1e-7)
    assert shapiro_w(np.ones(n)) == 1.0


def test_a_policy_reload_reuses_the_fitted_domain_scorer_unless_the_reference_changed(domain_split, tmp_path,
                                                                                    monkeypatch):
    from redline.defences import domain

    fits = []
    original = domain.DomainScorer.fit
    monkeypatch.setattr(domain.DomainScorer, "fit", lambda self, *a, **k: fits.append(1) or original(self, *a, **k))
    reference, held = domain_split
    first, second = domain_monitor(reference, seed=7), domain_monitor(reference, seed=7)  # a reload: a new monitor
    assert second._domain_ is first._domain_ and len(fits) == 1
    changed = tmp_path / "changed.npz"  # the operator replaced the reference file
    np.savez(changed, x_train=held[:100], y_train=np.zeros(100, int))
    assert domain_monitor(str(changed), seed=7)._domain_ is not first._domain_ and len(fits) == 2
    assert domain_monitor(reference, seed=8)._domain_ is not first._domain_ and len(fits) == 3  # other settings


def test_prada_carries_over_the_window_a_version_before_kept_as_a_list(digits):
    import struct

    m = monitor(min_queries=10, window=50).for_client("carol", MemoryState())
    store = m._store()
    store.push(m._key("d"), [struct.pack("<f", 0.5)] * 30, keep=50)  # what the list version left
    m.observe(digits[:12], np.arange(12) % 2)
    window = np.frombuffer(store.get(m._key("dw")), "<f4")
    assert len(window) > 30 and (window[:30] == 0.5).all() and not (window[30:] == 0.5).any()
    assert store.recent(m._key("d")) == []  # moved, once


def test_prada_only_appends_to_its_window_atomically(digits):
    # A read, then a write, of the window let two requests of one account in flight at once
    # erase each other's distances (a thief could wash its own out with concurrent requests).
    class WindowOnlyAppended(MemoryState):
        def get(self, key):
            assert not key.endswith(":dw"), "the window was read apart from an append"
            return super().get(key)

        def set(self, key, value, ttl=None):
            assert not key.endswith(":dw"), "the window was written apart from an append"
            return super().set(key, value, ttl)

    m = monitor(min_queries=10, window=50).for_client("dave", WindowOnlyAppended())
    for i in range(0, 90, 3):
        m.observe(digits[i:i + 3], np.arange(3) % 2)
    assert len(np.frombuffer(MemoryState.get(m._store(), m._key("dw")), "<f4")) == 50


def test_prada_carries_over_the_old_list_even_when_the_first_request_overflows_the_window(digits):
    import struct

    m = monitor(min_queries=5, window=8).for_client("erin", MemoryState())
    store = m._store()
    store.push(m._key("d"), [struct.pack("<f", 0.5)] * 5, keep=8)
    m.observe(digits[:12], np.arange(12) % 2)  # more new distances than the window holds
    assert len(np.frombuffer(store.get(m._key("dw")), "<f4")) == 8 and store.recent(m._key("d")) == []
