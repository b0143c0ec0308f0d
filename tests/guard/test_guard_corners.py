"""The query detector's corner test through the real guard (uvicorn, SQLite state) in front of a
model endpoint on 127.0.0.1: Square's first queries (the clean input, then stripes of +-eps)
are flagged as a corner and the second corner of the same ball locks the account out; an
honest client re-sending its images under noise and brightness is answered throughout and
never taken for a corner."""
from __future__ import annotations

import json

import numpy as np
from guard_testkit import HTTP, KEY_ALICE, KEY_BOB, ModelEndpoint

POLICY = """
version: 1
input: {shape: [1, 8, 8], lower: 0, upper: 1}
defences:
  - query_detector: {}
"""


def post(guard, rows, key=KEY_ALICE):
    return HTTP.post(guard.url + "/predict", json={"inputs": np.asarray(rows).tolist()}, headers={"X-API-Key": key})


def test_square_stripes_are_flagged_as_a_corner_and_the_second_corner_locks_out(start_guard):
    from sklearn.datasets import load_digits

    digits = (load_digits().data / 16.0).reshape(-1, 1, 8, 8)
    rng = np.random.default_rng(0)
    with ModelEndpoint(n_features=64, n_classes=10) as model:
        guard = start_guard(POLICY, model.url)
        x = digits[21]
        assert post(guard, [x]).status_code == 200  # the attack asks about the clean input
        corners = [np.clip(x + 0.25 * rng.choice([-1.0, 1.0], x.shape), 0, 1) for _ in range(2)]
        assert post(guard, [corners[0]]).status_code == 200  # the first corner is answered, flagged
        locked = post(guard, [corners[1]])
        assert locked.status_code == 403 and locked.json()["reason"] == "locked_out"
        # an honest client: other images, each re-sent under noise or brightness
        for image in digits[100:130]:
            assert post(guard, [image], key=KEY_BOB).status_code == 200
            retake = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1) if rng.random() < 0.5 \
                else np.clip(image + 0.15, 0, 1)
            assert post(guard, [retake], key=KEY_BOB).status_code == 200
        guard.built.audit.flush()
        records = [json.loads(line) for line in guard.audit_path.read_text().splitlines()]
    flags = [e for r in records for e in r.get("events", []) if e["event"] == "flagged"]
    assert [e["test"] for e in flags if e["client"] == "alice"] == ["corner", "corner"]
    # a re-take may look similar once (unchained, never counted), but is never a corner
    assert not [e for e in flags if e["client"] == "bob" and (e["test"] == "corner" or e.get("chained"))]
