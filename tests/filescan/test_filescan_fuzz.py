"""Hostile bytes never crash the scanner, and damaging a payload never makes it "safe"."""
import pickle

from filescan_asm import system, zip_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redline.filescan import scan_path

PAYLOAD = system("touch /nonexistent/CANARY")
BENIGN = pickle.dumps({"w": [1.0, 2.0], "n": "x" * 40}, protocol=4)
SEEDS = [PAYLOAD, BENIGN, zip_bytes({"a/data.pkl": BENIGN, "a/version": b"3\n"}), b"\x93NUMPY\x01\x00" + bytes(20)]


def _scan(tmp_path_factory, data: bytes):
    path = tmp_path_factory.mktemp("fuzz") / "f.bin"
    path.write_bytes(data)
    return scan_path(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_random_bytes_never_crash(tmp_path_factory, data):
    assert _scan(tmp_path_factory, data).verdict in ("safe", "unsafe", "error")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SEEDS), st.integers(0, 10_000), st.binary(min_size=1, max_size=8))
def test_mutations_never_crash(tmp_path_factory, seed, where, patch):
    where %= len(seed)
    data = seed[:where] + patch + seed[where + len(patch):]
    assert _scan(tmp_path_factory, data).verdict in ("safe", "unsafe", "error")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, len(PAYLOAD) - 1))
def test_truncated_payload_is_never_safe(tmp_path_factory, cut):
    assert _scan(tmp_path_factory, PAYLOAD[:cut]).verdict != "safe"
