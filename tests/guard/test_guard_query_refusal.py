"""The query detector's refuse_flagged through the real guard (uvicorn) in front of a model
endpoint on 127.0.0.1: a near-copy of an account's recent query is refused with a JSON reason
and never reaches the model; honest queries and exact retries are answered."""
from __future__ import annotations

import json

from guard_testkit import HTTP, KEY_ALICE, KEY_BOB

from redline.cli import main

POLICY = """
version: 1
input: {shape: [4], lower: 0, upper: 1}
defences:
  - query_detector: {refuse_flagged: true}
"""


def post(guard, rows, key=KEY_ALICE):
    return HTTP.post(guard.url + "/predict", json={"inputs": rows}, headers={"X-API-Key": key})


def test_a_near_copy_is_refused_with_a_json_reason_and_never_reaches_the_model(start_guard, model_endpoint):
    guard = start_guard(POLICY, model_endpoint.url)  # clients alice and bob, from a keys file
    first = [[0.1, 0.9, 0.3, 0.6]]
    near = [[0.11, 0.9, 0.3, 0.6]]  # the same input but for a change below the detector's step
    assert post(guard, first).status_code == 200
    refused = post(guard, near)
    assert refused.status_code == 403
    body = refused.json()
    assert body["reason"] == "similar_query" and "too like a recent query" in body["error"]
    assert set(body) == {"error", "reason"} and "score" not in refused.text and "0.25" not in refused.text
    assert model_endpoint.rows == 1  # the refused row never reached the model
    assert post(guard, first).status_code == 200  # an exact retry of an answered query
    assert post(guard, [[0.8, 0.2, 0.7, 0.05]]).status_code == 200  # an unrelated honest query
    assert post(guard, near).status_code == 403  # the refused bytes again: still refused
    assert post(guard, near, key=KEY_BOB).status_code == 200  # bob's history is his own
    assert model_endpoint.rows == 4
    guard.built.audit.flush()
    records = [json.loads(line) for line in guard.audit_path.read_text().splitlines()]
    refusals = [r for r in records if r.get("reason") == "similar_query"]
    assert len(refusals) == 2 and all(r["status"] == 403 and r["client"] == "alice" for r in refusals)
    assert [e["event"] for e in refusals[0]["events"]] == ["flagged", "refused"]
    assert [e["event"] for e in refusals[1]["events"]] == ["refused"]  # a re-send is not a new flag


def test_guard_check_refuses_a_refuse_flagged_that_is_not_a_bool(tmp_path, capsys):
    policy = tmp_path / "guard.yaml"
    policy.write_text(POLICY.replace("refuse_flagged: true", "refuse_flagged: 'yes'"))
    assert main(["guard", "--check", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "refuse_flagged must be true or false" in err and err.count("\n") == 1
    policy.write_text(POLICY)
    assert main(["guard", "--check", str(policy)]) == 0
