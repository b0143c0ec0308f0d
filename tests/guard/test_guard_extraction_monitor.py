"""The extraction monitor on live traffic: the real guard (uvicorn, SQLite state) in front of a
model endpoint on 127.0.0.1 locks out the account that passes its row budget, and only it."""
from __future__ import annotations

import json

import httpx
import numpy as np
from guard_testkit import KEY_ALICE, KEY_BOB

POLICY = """
version: 1
input: {shape: [4], lower: 0, upper: 1}
defences:
  - extraction_monitor: {max_rows: 30, min_queries: 10, window: 50}
"""


def post(guard, rows, key):
    return httpx.post(guard.url + "/predict", json={"inputs": np.asarray(rows).tolist()},
                      headers={"X-API-Key": key}, timeout=10)


def test_the_account_past_its_budget_is_locked_out_and_audited(start_guard, model_endpoint):
    guard = start_guard(POLICY, model_endpoint.url)  # clients alice and bob, from a keys file
    rows = np.random.default_rng(0).random((40, 4))
    for start in range(0, 30, 10):
        assert post(guard, rows[start:start + 10], KEY_ALICE).status_code == 200
    assert post(guard, rows[:10], KEY_ALICE).status_code == 200  # retries take nothing from the budget
    assert post(guard, rows[:10], KEY_BOB).status_code == 200  # nor do another account's rows
    answered = model_endpoint.rows
    refused = post(guard, rows[30:32], KEY_ALICE)
    assert refused.status_code == 403 and refused.json()["reason"] == "locked_out"
    assert post(guard, rows[:1], KEY_ALICE).status_code == 403  # every request from now on
    assert model_endpoint.rows == answered  # the model answered none of them
    assert post(guard, rows[10:20], KEY_BOB).status_code == 200
    guard.built.audit.flush()
    records = [json.loads(line) for line in guard.audit_path.read_text().splitlines()]
    found = [e for r in records for e in r.get("events", []) if e.get("defence") == "extraction_monitor"]
    assert [e["event"] for e in found] == ["flagged", "locked_out"]
    assert found[0]["test"] == "budget" and found[0]["client"] == "alice" and found[0]["rows"] == 32


def test_the_account_sending_out_of_domain_inputs_is_locked_out_before_the_model_answers_it(start_guard, tmp_path):
    from guard_testkit import ModelEndpoint
    from sklearn.datasets import load_digits

    digits = (load_digits().data / 16.0).reshape(-1, 1, 8, 8)
    np.savez(tmp_path / "reference.npz", x_train=digits[:1200], y_train=np.zeros(1200, int))
    policy = ("version: 1\ninput: {shape: [1, 8, 8], lower: 0, upper: 1}\ndefences:\n"
              f"  - extraction_monitor: {{shapiro_below: null, reference: 'npz:{tmp_path / 'reference.npz'}'}}\n")
    from redline_testkit import photo_patches

    smooth = photo_patches(40, seed=1)  # grey crops of sample photos: natural images of another domain
    with ModelEndpoint(n_features=64, n_classes=10) as model:
        guard = start_guard(policy, model.url)
        assert post(guard, digits[1200:1300], KEY_BOB).status_code == 200  # held-out digits: in domain
        assert post(guard, smooth[:10], KEY_ALICE).status_code == 200  # too few rows to decide
        answered = model.rows
        refused = post(guard, smooth[10:40], KEY_ALICE)
        assert refused.status_code == 403 and refused.json()["reason"] == "locked_out"
        assert model.rows == answered
        assert post(guard, digits[1300:1310], KEY_BOB).status_code == 200
    guard.built.audit.flush()
    records = [json.loads(line) for line in guard.audit_path.read_text().splitlines()]
    found = [e for r in records for e in r.get("events", []) if e.get("defence") == "extraction_monitor"]
    assert [(e["event"], e["client"], e["test"]) for e in found] == [("flagged", "alice", "domain"),
                                                                       ("locked_out", "alice", "domain")]
