"""The registry's Python API on SQLite and PostgreSQL: recording, dedup, status, search, replays,
links, artifacts and incidents."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from registry_testkit import make_finding, make_report

from redline.errors import UsageError
from redline.registry import CaseStatus, FailureCase, Registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def registry(registry_url):
    with Registry(registry_url) as reg:
        yield reg


def test_a_report_adds_its_vulnerable_findings_and_a_resubmission_adds_none(registry):
    report = make_report([make_finding(1), make_finding(2, status="not_vulnerable"), make_finding(3, mode="FM04",
                          check="FM04.lira", title="Membership inference with reference models")])
    first = registry.add_report_results(report, "alice")
    assert [r.new for r in first] == [True, True]
    again = registry.add_report_results(report, "bob")
    assert [(r.id, r.new, r.matched_by) for r in again] == [(r.id, False, "finding-id") for r in first]
    assert registry.list().total == 2
    case = registry.get(first[0].id)
    assert case.finding_id == f"{1:016x}" and case.target == "zoo:fair_logreg" and case.added_by == "alice"
    assert case.check == "FM05.equation_solving" and case.params == {"spread": 0.1, "n": 1} and case.budget == 1000
    assert "AML.T0024" in case.atlas  # the mode's ATLAS techniques from the catalog
    assert [o["matched_by"] for o in registry.observations(case.id)] == ["new", "finding-id"]


def test_every_field_of_a_case_round_trips(registry):
    case = FailureCase(title="Chatbot leaks its system prompt", mode="FM03", severity="Moderate", rationale="r",
                       summary="s", remediation="fix", source="manual", system="helpdesk", model="m", version="2",
                       target="http://127.0.0.1:9/predict", data="builtin:fair", check="", params={"a": [1, 2]},
                       seed=3, budget=40, metrics={"attack_accuracy": 0.7}, evidence={"note": "x"},
                       artifacts={"plot.png": "0" * 64}, references=["https://example.org/r"], tags=["t1"],
                       atlas=["AML.T0024"], avid=["S0301"], added_by="carol")
    added = registry.add_case(case)
    stored = registry.get(added.id)
    expected = {**case.to_dict(), "id": added.id, "created_at": stored.created_at, "updated_at": stored.updated_at}
    assert stored.to_dict() == expected
    assert stored.created_at.endswith("+00:00")


def test_near_identical_content_is_the_same_case_but_other_checks_and_targets_are_not(registry):
    base = make_finding(10, summary="The copy agrees with the target on 99.1% of held-out inputs after 120 queries.")
    reworded = dict(make_finding(11, summary="The copy agrees with the target on 98.7% of held-out inputs after 118 queries!"),
                    title=base["title"].upper())
    first = registry.add_report_results(make_report([base]))[0]
    second = registry.add_report_results(make_report([reworded]))[0]
    assert (second.id, second.new, second.matched_by) == (first.id, False, "content") and second.similarity >= 0.6
    # The same words from another check, or about another target, are another failure.
    other_check = dict(reworded, id=f"{12:016x}", check="FM05.learning")
    other_target = dict(reworded, id=f"{13:016x}")
    assert registry.add_report_results(make_report([other_check]))[0].new
    assert registry.add_report_results(make_report([other_target], target="zoo:fair_tree"))[0].new
    # The merged finding id is remembered: re-adding it is a finding-id match.
    assert registry.add_report_results(make_report([reworded]))[0].matched_by == "finding-id"


def test_endpoints_shown_alike_are_told_apart_by_the_digest_of_their_url(registry):
    # Two versions of one service a query value apart: both shown ?model=REDACTED, each finding
    # carrying the digest of its full URL (as a scan records it).
    shown = "http://127.0.0.1:9/predict?model=REDACTED"
    summary = "The copy agrees with the target on 99.1% of held-out inputs after 120 queries."
    v1 = dict(make_finding(30, summary=summary), evidence={"target_digest": "sha256:1111111111111111"})
    v2 = dict(make_finding(31, summary=summary), title=v1["title"], evidence={"target_digest": "sha256:2222222222222222"})
    first = registry.add_report_results(make_report([v1], target=shown))[0]
    assert registry.add_report_results(make_report([v2], target=shown))[0].new  # not merged by content
    # The same URL again (another budget, so another finding id) is still the same failure.
    again = dict(v1, id=f"{32:016x}", budget=2000)
    assert registry.add_report_results(make_report([again], target=shown))[0].id == first.id


def test_a_later_report_closes_and_reopens_a_case(registry):
    case_id = registry.add_report([make_finding(20)] and make_report([make_finding(20)]))[0]
    fixed = registry.add_report_results(make_report([make_finding(20, status="not_vulnerable")]))
    assert fixed[0].status_change == "open -> fixed" and registry.get(case_id).status is CaseStatus.FIXED
    back = registry.add_report_results(make_report([make_finding(20)]))
    assert back[0].status_change == "fixed -> regressed" and registry.get(case_id).status is CaseStatus.REGRESSED
    events = [(h["event"], h["detail"].get("to")) for h in registry.history(case_id)]
    assert ("status", "fixed") in events and ("status", "regressed") in events


def test_search_by_words_and_filters_with_pages(registry):
    findings = [make_finding(n, severity="Critical" if n % 3 == 0 else "Moderate") for n in range(30)]
    findings.append(make_finding(99, mode="FM04", check="FM04.lira", title="Membership of patients revealed",
                                 summary="Hospital records can be recognised."))
    registry.add_report(make_report(findings))
    assert registry.search("patients").total == 1
    assert registry.search("PATIENT hospital").total == 1  # case-insensitive, words match as prefixes
    assert registry.search("patients stealing").total == 0  # every word must match
    assert registry.search("stealing", mode="FM05").total == 30 == registry.list().total - 1
    assert registry.search("", severity="critical").total == 10
    assert registry.search("", mode="FM04,FM05", severity="critical,moderate").total == 30
    assert registry.search("", severity="important").total == 1
    assert registry.search("'); DROP TABLE cases; --").total == 0 and registry.list().total == 31
    page1, page2 = registry.list(limit=20), registry.list(limit=20, offset=20)
    assert (page1.total, len(page1.cases), len(page2.cases)) == (31, 20, 11)
    assert not {c.id for c in page1.cases} & {c.id for c in page2.cases}
    registry.update_status(page1.cases[0].id, "wont-fix", by="dave", note="accepted risk")
    assert [c.id for c in registry.list(status="wont-fix").cases] == [page1.cases[0].id]
    with pytest.raises(UsageError, match="severity must be one of"):
        registry.search("", severity="huge")


def test_system_filter_and_counts(registry):
    registry.add_report(make_report([make_finding(1)]), system="Photo API")
    registry.add_report(make_report([make_finding(2, mode="FM04", check="FM04.lira", title="Members")], target="t2"))
    assert registry.list(system="photo api").total == 1
    counts = registry.counts()
    assert sum(c["cases"] for c in counts) == 2 and {c["mode"] for c in counts} == {"FM04", "FM05"}


def test_ids_prefixes_and_unknown_ids(registry):
    case_id = registry.add_report(make_report([make_finding(5)]))[0]
    assert registry.get(case_id[:6]).id == case_id
    assert registry.get(f"{5:016x}").id == case_id  # by its finding id
    for bad in ("nope", "", "abcdef"):
        with pytest.raises(UsageError, match="no case|no case id"):
            registry.get(bad)


def test_replays_move_the_status_and_are_kept(registry):
    case_id = registry.add_report(make_report([make_finding(7)]))[0]
    registry.record_replay(case_id, "fixed", target="onnx:v2.onnx", replayed_status="not_vulnerable",
                           metrics={"fidelity": 0.4})
    assert registry.get(case_id).status is CaseStatus.FIXED
    registry.record_replay(case_id, "regressed", target="onnx:v3.onnx", replayed_status="vulnerable")
    assert registry.get(case_id).status is CaseStatus.REGRESSED
    registry.record_replay(case_id, "error", reason="endpoint down")
    assert registry.get(case_id).status is CaseStatus.REGRESSED  # an undecided replay changes nothing
    assert [r["outcome"] for r in registry.replays(case_id)] == ["fixed", "regressed", "error"]
    assert registry.replays(case_id)[0]["metrics"] == {"fidelity": 0.4}
    registry.update_status(case_id, "wont-fix")
    registry.record_replay(case_id, "fixed")
    assert registry.get(case_id).status is CaseStatus.WONT_FIX  # a decision to live with it stands
    with pytest.raises(UsageError, match="outcome"):
        registry.record_replay(case_id, "maybe")


def test_links_between_cases(registry):
    a, b = registry.add_report(make_report([make_finding(1), make_finding(2, mode="FM04", check="FM04.lira",
                                                                            title="Another")]))
    registry.link(a, b, "related")
    registry.link(a, b, "related")  # twice is once
    assert registry.links(a) == [{"kind": "case", "id": b, "relation": "related", "direction": "to"}]
    assert registry.links(b)[0]["direction"] == "from"
    with pytest.raises(UsageError, match="itself"):
        registry.link(a, a)


def test_artifacts_are_stored_once_by_content(registry, tmp_path):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "plot.png").write_bytes(b"\x89PNG same bytes")
    (tmp_path / "artifacts" / "copy.png").write_bytes(b"\x89PNG same bytes")
    (tmp_path / "secret.txt").write_text("outside the report's evidence")
    one = dict(make_finding(1), evidence={"plots": ["artifacts/plot.png"], "other": "../secret.txt"})
    two = dict(make_finding(2, mode="FM04", check="FM04.lira", title="Other"), evidence={"plot": "artifacts/copy.png"})
    path = tmp_path / "report.json"
    path.write_text(json.dumps(make_report([one, two])))
    first, second = registry.add_report(path)
    sha = registry.get(first).artifacts["artifacts/plot.png"]
    assert registry.get(second).artifacts == {"artifacts/copy.png": sha}
    assert registry.get(first).artifacts.keys() == {"artifacts/plot.png"}  # ../secret.txt is not read
    assert registry.get_artifact(sha) == (b"\x89PNG same bytes", "image/png")
    from sqlalchemy import func, select

    from redline.registry import schema

    with registry._engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.artifacts)).scalar_one() == 1


def test_an_incident_is_triaged_recorded_and_linked_to_its_case(registry):
    added = registry.add_incident(EXAMPLES / "stolen-model.incident.yaml", "erin")
    assert added.new and added.case is not None and added.case.new
    case = registry.get(added.case.id)
    assert case.mode == "FM05" and case.source == "incident" and case.severity == added.severity
    incident = registry.get_incident(added.incident_id)
    assert incident["triage"]["primary"] == "FM05" and incident["raw"]["title"] == case.title
    assert registry.links(case.id) == [{"kind": "incident", "id": added.incident_id, "relation": "reported-as",
                                        "direction": "from"}]
    again = registry.add_incident(EXAMPLES / "stolen-model.incident.yaml", "erin")
    assert not again.new and not again.case.new and len(registry.incidents()) == 1


def test_bad_cases_are_refused(registry):
    with pytest.raises(UsageError, match="mode"):
        registry.add_case(FailureCase(title="x", mode="FM99"))
    with pytest.raises(UsageError, match="title"):
        registry.add_case(FailureCase(title=" ", mode="FM01"))
    with pytest.raises(UsageError, match="not a redline report"):
        registry.add_report({"findings": "nope"})
    assert registry.list().total == 0
