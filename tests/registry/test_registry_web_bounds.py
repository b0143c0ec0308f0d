"""Hostile reads and writes of the registry's web app get a 4xx with a reason, never a 500:
page numbers past what the database's 64-bit offsets hold, and incidents nested too deeply."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the registry extra is not installed (pip install 'redline[registry]')")
pytest.importorskip("sqlalchemy", reason="the registry extra is not installed (pip install 'redline[registry]')")

from fastapi.testclient import TestClient  # noqa: E402

from redline.cli import main  # noqa: E402
from redline.registry.case import FailureCase  # noqa: E402
from redline.registry.store import Registry  # noqa: E402
from redline.registry.web import create_app  # noqa: E402

WRITE = "write-token-1"
HUGE = "99999999999999999999999"  # beyond SQLite's (and PostgreSQL's) 64-bit integers


@pytest.fixture
def registry(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    reg.add_case(FailureCase(title="Membership of patients revealed", summary="confidence scores", mode="FM04",
                             severity="Important", check="FM04.lira", target="zoo:digits", seed=0, budget=100))
    yield reg
    reg.close()


@pytest.fixture
def client(registry):
    return TestClient(create_app(registry, write_token=WRITE), raise_server_exceptions=False)


@pytest.mark.parametrize("page", [HUGE, str(10**9 + 1)])
def test_a_page_past_the_last_possible_one_is_a_400_with_a_reason(client, page):
    found = client.get("/search", params={"page": page})
    assert found.status_code == 400 and "page must be at most" in found.text
    api = client.get("/api/cases", params={"page": page})
    assert api.status_code == 400 and "page must be at most" in api.json()["reason"]
    assert client.get("/api/cases", params={"page": page, "per_page": HUGE}).status_code == 400


def test_page_bounds_that_are_fine_still_read(client):
    assert client.get("/search", params={"page": "0"}).status_code == 200  # the first page
    far = client.get("/api/cases", params={"page": str(10**9), "per_page": HUGE})  # past the end: empty, not an error
    assert far.status_code == 200 and far.json()["cases"] == [] and far.json()["per_page"] == 200


@pytest.mark.parametrize("depth", [100_000, 65])
def test_an_incident_nested_too_deeply_is_a_422_with_a_reason(client, registry, depth):
    body = '{"title": "deep", "what_happened": "x", "a": ' + "[" * depth + "]" * depth + "}"
    made = client.post("/api/incidents", content=body.encode(), headers={"Authorization": f"Bearer {WRITE}"})
    assert made.status_code == 422 and "nested more than 64 levels" in made.json()["reason"]
    assert registry.search("deep").total == 0


def test_an_incident_nested_within_the_bound_is_triaged(client):
    doc = {"title": "Membership of patients revealed", "what_happened": "A researcher showed they could tell "
           "whether a patient was in the training data from the confidence scores (membership inference).",
           "notes": json.loads("[" * 60 + "]" * 60)}
    made = client.post("/api/incidents", json=doc, headers={"Authorization": f"Bearer {WRITE}"})
    assert made.status_code in (201, 422), made.text  # triaged, or refused for its content: never a 500
    assert made.status_code == 201 or "nested" not in made.json()["reason"]


@pytest.mark.parametrize("flag", ["--limit", "--offset"])
def test_cli_search_bounds_limit_and_offset_with_one_line(registry, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as done:
        main(["registry", "search", "patients", "--db", f"sqlite:///{tmp_path / 'registry.db'}", flag, HUGE])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert f"argument {flag}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
