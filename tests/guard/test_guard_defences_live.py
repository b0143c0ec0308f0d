"""The guard-defences modules on live traffic: the real guard (uvicorn, SQLite state) in front of
a model endpoint on 127.0.0.1, and a scan of the guarded endpoint beside the bare model."""
from __future__ import annotations

import hashlib
import json

import httpx
import numpy as np

# Keys of this module's own (importing them from the guard tests' conftest would depend on
# which conftest a whole-suite run imported first).
KEY_ALICE, KEY_BOB = "alice-live-key-5b1e0c9d2a", "bob-live-key-77c3e1a0f4"
HEAD = f"""
version: 1
clients:
  - {{name: alice, key_sha256: "{hashlib.sha256(KEY_ALICE.encode()).hexdigest()}"}}
  - {{name: bob, key_sha256: "{hashlib.sha256(KEY_BOB.encode()).hexdigest()}"}}
input: {{shape: [4], lower: 0, upper: 1}}
defences:
"""


def post(guard, rows, key=KEY_ALICE):
    return httpx.post(guard.url + "/predict", json={"inputs": rows}, headers={"X-API-Key": key}, timeout=10)


def events(guard):
    guard.built.audit.flush()
    records = [json.loads(line) for line in guard.audit_path.read_text().splitlines()]
    return [e for r in records for e in r.get("events", [])]


def test_validation_noise_and_temporal_through_the_guard(start_guard, model_endpoint):
    policy = HEAD + """  - validate: {bounds: from_target, max_batch: 4}
  - temporal: {window: 3, max_input_change: 0.2, action: flag}
  - noise: {scale: 0.5, seed: 3}
"""
    guard = start_guard(policy, model_endpoint.url, keys=False)
    bad = post(guard, [[0.1, 0.2, 1.5, 0.0]])
    assert bad.status_code == 422 and bad.json()["reason"] == "range" and "1.5" not in bad.text
    assert post(guard, [[0.1] * 4] * 5).json()["reason"] == "batch_size"
    assert model_endpoint.rows == 0  # refused before the model
    rows = [[0.2, 0.9, 0.1, 0.5]]
    first, again = post(guard, rows).json(), post(guard, rows).json()
    truth = model_endpoint.probabilities(np.float32(rows))
    assert first == again  # the same noise for the same question
    assert np.argmax(first["probabilities"]) == truth.argmax() and not np.allclose(first["probabilities"], truth)
    # A flip of the model's label between two nearly equal inputs is flagged for alice only.
    x = np.random.default_rng(0).random((200, 4))
    labels = model_endpoint.probabilities(np.float32(x)).argmax(1)
    step = np.abs(x[:, None, :] - x[None, :, :]).max(axis=2)
    i, j = np.argwhere((step < 0.2) & (labels[:, None] != labels[None, :]))[0]
    post(guard, [x[i].tolist()])
    post(guard, [x[j].tolist()], key=KEY_BOB)  # bob's stream starts here
    post(guard, [x[j].tolist()])
    flips = [e for e in events(guard) if e["event"] == "flip"]
    assert len(flips) == 1 and flips[0]["defence"] == "temporal"


def test_drift_is_reported_on_metrics_and_in_the_audit_log(start_guard, model_endpoint, tmp_path):
    reference = tmp_path / "ref.npz"
    np.savez(reference, x_test=np.random.default_rng(1).random((300, 4)).astype(np.float32))
    guard = start_guard(HEAD + f"  - drift_monitor: {{reference: 'npz:{reference}', window: 40}}\n", model_endpoint.url,
                        keys=False)
    rng = np.random.default_rng(2)
    for _ in range(2):
        assert post(guard, rng.random((20, 4)).tolist(), key=KEY_BOB).status_code == 200
    clean = httpx.get(guard.url + "/metrics", timeout=5).text
    assert 'metric="drift_shift_detected"} 0.0' in clean and 'metric="drift_rows_seen"} 40.0' in clean
    for _ in range(2):  # every value squeezed into the top tenth of the range: a shift
        assert post(guard, (0.9 + 0.1 * rng.random((20, 4))).tolist()).status_code == 200
    shifted = httpx.get(guard.url + "/metrics", timeout=5).text
    assert 'metric="drift_shift_detected"} 1.0' in shifted
    assert [e["event"] for e in events(guard) if e["defence"] == "drift_monitor"] == ["shift_detected"]


def test_a_scan_of_the_guarded_endpoint_shows_the_bare_model_beside_it(start_guard, model_endpoint, tmp_path):
    import redline

    guard = start_guard(HEAD + "  - top_k: {k: 1}\n", model_endpoint.url, keys=False)
    rng = np.random.default_rng(3)
    x = rng.random((300, 4)).astype(np.float32)
    y = model_endpoint.probabilities(x).argmax(1)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x[:100], y_train=y[:100], x_test=x[100:200], y_test=y[100:200],
             x_pool=x[200:], y_pool=y[200:])
    config = tmp_path / "guarded.yaml"
    config.write_text(f"headers: {{X-API-Key: {KEY_ALICE}}}\nbaseline: {model_endpoint.url}\nn_classes: 3\n")
    report = redline.scan(guard.url + "/predict", f"npz:{data}", select="FM05.equation_solving",
                          target_config=str(config))
    (row,) = report.defences["checks"]
    assert report.defences["baseline"]["spec"] == model_endpoint.url
    assert row["bare"]["status"] == "vulnerable" and row["bare"]["value"] > 0.99
    assert row["defended"]["status"] != "vulnerable" and row["effect"] == "stopped"
