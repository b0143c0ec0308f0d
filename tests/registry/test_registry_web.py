"""The registry's web pages through FastAPI's TestClient: every page, the JSON reads, the
incident form (triaged on submit) and the token rules."""
from __future__ import annotations

import base64
import re

import pytest

pytest.importorskip("fastapi", reason="the registry extra is not installed (pip install 'redline[registry]')")
pytest.importorskip("sqlalchemy", reason="the registry extra is not installed (pip install 'redline[registry]')")

from fastapi.testclient import TestClient  # noqa: E402

from redline.checks.params import parse_set  # noqa: E402
from redline.errors import UsageError  # noqa: E402
from redline.registry.case import FailureCase  # noqa: E402
from redline.registry.store import Registry  # noqa: E402
from redline.registry.web import create_app  # noqa: E402
from redline.registry.web.charts import fill_months, timeline_svg  # noqa: E402
from redline.registry.reproduce import scan_command, set_value  # noqa: E402
from redline.registry.web.server import WRITE_TOKEN_ENV, parse_listen, tokens  # noqa: E402

WRITE, READ = "write-token-1", "read-token-2"
SEVERITIES = ("Critical", "Important", "Moderate", "Low")
# A tiny PNG (1x1), stored as an artifact so the case page can show it as a plot.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
WORDS = ("amber basalt cobalt dune ember fjord garnet harbor indigo jasper kelp lumen marble nectar onyx "
         "prism quartz russet sable tundra umber velvet willow xenon yarrow zephyr").split()


def words_for(i: int) -> str:
    """Text no other case shares (so the store's near-duplicate check keeps each case)."""
    return " ".join(f"{WORDS[(i * 7 + k) % len(WORDS)]}{i}x{k}" for k in range(6))


def sample_case(i: int, **overrides) -> FailureCase:
    fields = dict(
        title=f"Case {i}: {words_for(i)}", summary=f"What was seen in run {words_for(i + 1000)}",
        mode=f"FM{1 + i % 17:02d}", severity=SEVERITIES[i % 4], check="FM04.lira",
        target=f"zoo:digits_overfit_{i}", data="builtin:digits", seed=i, budget=1000 + i,
        params={"epsilon": 0.1, "norm": "l2"}, metrics={"auc": 0.81, "tpr_at_fpr_0.001": 0.12},
        system="photo-api" if i % 2 else "loan-scorer",
    )
    fields.update(overrides)
    return FailureCase(**fields)


@pytest.fixture
def registry(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield reg
    reg.close()


@pytest.fixture
def any_registry(registry_url):
    """A registry on each back end (SQLite, and PostgreSQL: see conftest.py), for the tests of
    what the pages read from the store and write to it."""
    reg = Registry(registry_url)
    yield reg
    reg.close()


@pytest.fixture
def client(registry):
    return TestClient(create_app(registry, write_token=WRITE))


def stolen_model_form(**extra) -> dict:
    form = {
        "title": "Competitor app returns the same tags as our photo API",
        "what_happened": "Four new API keys sent two million queries; a competitor's app now gives our answers.",
        "attacker_capability": "They trained a copy of the model from our API answers.",
        "system": "photo-api",
        "facts.vector": "queries",
        "facts_list.effects": ["model_copied"],
        "facts.queries": "2000000",
        "metrics": "fidelity: 0.97",
    }
    form.update(extra)
    return form


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# -- the dashboard --------------------------------------------------------------------------


def test_dashboard_counts_cases_by_mode_and_severity(any_registry):
    registry = any_registry
    client = TestClient(create_app(registry, write_token=WRITE))
    for i in range(10):
        registry.add_case(sample_case(i, mode="FM04" if i < 6 else "FM05", severity="Critical" if i < 3 else "Low"))
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert re.search(r'id="total-cases">10<', html)
    by_mode = html[html.index('id="by-mode"'):]
    assert re.search(r"FM04</td>.*?<a href=\"/search\?mode=FM04\">6</a>", by_mode, re.S)
    assert re.search(r"FM05</td>.*?<a href=\"/search\?mode=FM05\">4</a>", by_mode, re.S)
    by_severity = html[html.index('id="by-severity"'):html.index('id="by-mode"')]
    assert re.search(r'severity=Critical">3</a>', by_severity) and re.search(r'severity=Low">7</a>', by_severity)
    assert re.search(r'severity=Important">0</a>', by_severity)
    # This month's bar in the timeline, stacked by severity.
    assert re.search(r'<rect class="tbar"[^>]*data-severity="Critical" data-count="3"', html)
    assert re.search(r'<rect class="tbar"[^>]*data-severity="Low" data-count="7"', html)


def test_empty_registry_dashboard_says_so(client):
    html = client.get("/").text
    assert 'id="total-cases">0<' in html and "No cases yet." in html


def test_timeline_keeps_empty_months_and_stacks_severities():
    months = fill_months([("2026-11", {"Low": 2}), ("2027-02", {"Critical": 1, "Low": 1}), ("garbage", {"Low": 5})])
    assert [m for m, _ in months] == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert [sum(c.values()) for _, c in months] == [2, 0, 0, 2]
    svg = timeline_svg(months)
    assert svg.count('<rect class="tbar"') == 3  # empty months draw nothing
    heights = [float(h) for h in re.findall(r'class="tbar"[^>]*height="([\d.]+)"', svg)]
    assert heights[0] == pytest.approx(heights[1] + heights[2])  # 2 cases as tall as 1 + 1


# -- search ----------------------------------------------------------------------------------


def test_search_by_text_and_filters(any_registry):
    registry = any_registry
    client = TestClient(create_app(registry, write_token=WRITE))
    ids = [registry.add_case(sample_case(i)).id for i in range(12)]
    html = client.get("/search", params={"q": words_for(5).split()[2]}).text
    assert 'id="result-count">1 case,' in html and f'href="/cases/{ids[5]}"' in html
    for params, expected in (({"mode": "FM03"}, [2]), ({"severity": "important"}, [1, 5, 9]),
                             ({"system": "photo-api", "severity": "Important"}, [1, 5, 9]),
                             ({"system": "loan-scorer", "severity": "Important"}, [])):
        html = client.get("/search", params=params).text
        found = set(re.findall(r'href="/cases/([0-9a-f]+)"', html))
        assert found == {ids[i] for i in expected}, params
    registry.update_status(ids[4], "fixed")
    html = client.get("/search", params={"status": "fixed"}).text
    assert set(re.findall(r'href="/cases/([0-9a-f]+)"', html)) == {ids[4]}
    assert re.search(r'<option value="fixed" selected>', html)  # the form shows the filter in force


def test_search_pages_through_results_keeping_filters(any_registry):
    registry = any_registry
    client = TestClient(create_app(registry, write_token=WRITE))
    for i in range(45):
        registry.add_case(sample_case(i, system="photo-api"))
    first = client.get("/search", params={"system": "photo-api"}).text
    assert "45 cases, showing 1–20" in text_of(first) and "page 1 of 3" in first
    assert len(re.findall(r'class="case-link"', first)) == 20
    nxt = re.search(r'<a rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "system=photo-api" in nxt and "page=2" in nxt
    last = client.get("/search", params={"system": "photo-api", "page": 3}).text
    assert len(re.findall(r'class="case-link"', last)) == 5 and 'rel="next"' not in last and 'rel="prev"' in last
    seen = set()
    for page in (1, 2, 3):
        seen |= set(re.findall(r'href="/cases/([0-9a-f]+)"', client.get("/search", params={"page": page}).text))
    assert len(seen) == 45  # every case on exactly one page


def test_search_refuses_unknown_filters_with_one_line(client):
    for params in ({"mode": "FM99"}, {"severity": "dire"}, {"status": "closed"}):
        page = client.get("/search", params=params)
        assert page.status_code == 400
        message = re.search(r'id="message">([^<]+)<', page.text).group(1)
        assert "\n" not in message and ("unknown" in message or "choose" in message)
    assert client.get("/api/cases", params={"mode": "FM99"}).status_code == 400


# -- the case page ------------------------------------------------------------------------------


def test_case_page_shows_fields_reproduction_replays_links_and_artifacts(any_registry):
    registry = any_registry
    client = TestClient(create_app(registry, write_token=WRITE))
    digest = registry.put_artifact(PNG, "image/png")
    svg = registry.put_artifact(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                                "image/png")  # a writer's claimed media type is not believed
    case = registry.add_case(sample_case(3, params={"epsilon": 0.1, "note": "two words"},
                                         artifacts={"roc.png": digest, "examples.npz": "ab" * 32, "x.png": svg},
                                         evidence={"examples": "artifacts/FM04.lira.npz"}))
    other = registry.add_case(sample_case(4))
    registry.link(case.id, other.id, "related")
    registry.record_replay(case.id, "fixed", target="zoo:digits_dp", metrics={"auc": 0.51})
    page = client.get(f"/cases/{case.id}")
    assert page.status_code == 200
    html = page.text
    assert f"redline registry replay {case.id}" in html
    scan = re.search(r'id="scan-command">([^<]+)<', html).group(1).replace("&#39;", "'")
    assert scan == ("redline scan zoo:digits_overfit_3 --data builtin:digits --select FM04.lira --seed 3 "
                    "--budget 1003 --set FM04.lira.epsilon=0.1 --set 'FM04.lira.note=two words'")
    assert "Membership inference" in html and "photo-api" in html
    assert re.search(r"<th>auc</th><td>0.81</td>", html)
    assert f"sha256:{digest}" in html and "sha256:" + "ab" * 32 in html
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in html  # the stored plot, inline
    assert html.count("<img ") == 1 and f"sha256:{svg}" in html  # the SVG is listed, never shown
    replays = html[html.index('id="replays"'):]
    assert "fixed" in replays and "zoo:digits_dp" in replays and "0.51" in replays
    assert f'href="/cases/{other.id}"' in html[html.index('id="link-list"'):]
    assert "Fixed" in html  # the replay moved the status
    events = text_of(html[html.index('id="events"'):html.index('id="links"')])
    assert "status open -&gt; fixed (replay on zoo:digits_dp)" in events and "replay fixed on zoo:digits_dp" in events
    assert f"linked to case {other.id} (related)" in events


def test_case_page_names_plot_data_and_shows_the_retest_command(registry, client):
    curve = {"fpr": [i / 50 for i in range(51)], "tpr": [min(1.0, 2 * i / 50) for i in range(51)]}
    retest = "redline scan zoo:m --select FM04.lira --seed 0 --out redline-retest-FM04.lira"
    case = registry.add_case(sample_case(2, evidence={"roc": curve},
                                         remediation=f"Reduce overfitting first.\nRe-test after the fix: {retest}"))
    html = client.get(f"/cases/{case.id}").text
    assert "plot data: 51 points of fpr, tpr" in html and "0.98" not in html  # named, not dumped
    assert f'<code class="retest">{retest}</code>' in html and "<li>Reduce overfitting first.</li>" in html


def test_case_page_for_an_unknown_id_is_404(client):
    page = client.get("/cases/0123456789ab")
    assert page.status_code == 404 and "No case 0123456789ab" in page.text
    assert client.get("/api/cases/0123456789ab").status_code == 404


def test_reproduction_command_values_read_back_as_given():
    for value in (0.1, 3, "l2", "two words", "0.5", "true", [1, 2], True, None, "a=b", "x: y"):
        case = FailureCase(title="t", mode="FM01", check="FM01.pgd", target="zoo:m", params={"p": value})
        words = scan_command(case).split(" --set ", 1)[1]
        import shlex

        assert parse_set([shlex.split(words)[0]]) == {"FM01.pgd": {"p": value}}, value
    assert set_value("l2") == "l2" and set_value("0.5") == '"0.5"'
    assert scan_command(FailureCase(title="t", mode="FM05", source="incident")) is None


# -- JSON reads --------------------------------------------------------------------------------


def test_json_endpoints_serve_the_same_reads(registry, client):
    ids = [registry.add_case(sample_case(i)).id for i in range(25)]
    body = client.get("/api/cases", params={"per_page": 10, "page": 3}).json()
    assert body["total"] == 25 and body["pages"] == 3 and len(body["cases"]) == 5
    assert all(c["schema"] == "redline.case/1" for c in body["cases"])
    one = client.get(f"/api/cases/{ids[7]}").json()
    assert one["id"] == ids[7] and one["check"] == "FM04.lira" and one["replays"] == []
    assert one["replay_command"] == f"redline registry replay {ids[7]}" and "--seed 7" in one["scan_command"]
    filtered = client.get("/api/cases", params={"mode": "FM02"}).json()
    assert {c["id"] for c in filtered["cases"]} == {ids[1], ids[18]}  # 1 and 18 are FM02


# -- submitting an incident -------------------------------------------------------------------------


def test_submit_form_lists_the_incident_facts_from_the_schema(client):
    html = client.get("/submit").text
    from redline.threatmodel._files import load_schema

    facts = load_schema("incident")["properties"]["facts"]["properties"]
    for value in facts["vector"]["enum"]:
        assert f"<option>{value}</option>" in html
    for value in facts["effects"]["items"]["enum"]:
        assert f'name="facts_list.effects" value="{value}"' in html
    assert 'name="token"' in html and 'type="password"' in html


def test_submitted_incident_is_triaged_and_stored_as_incident_and_case(any_registry):
    registry = any_registry
    client = TestClient(create_app(registry, write_token=WRITE))
    page = client.post("/submit", data=stolen_model_form(token=WRITE))
    assert page.status_code == 201
    html = page.text
    assert "FM05 · Model stealing" in html
    badge = re.search(r'id="triage-result">\s*<p><span class="badge [^"]+">(\w+)</span>', html).group(1)
    rationale = text_of(re.search(r'id="triage-rationale">(.*?)</p>', html, re.S).group(1))
    assert badge in ("Critical", "Important") and "FM05" in rationale
    case_id = re.search(r'id="case-link" class="mono" href="/cases/([0-9a-f]+)"', html).group(1)
    case = registry.get(case_id)
    assert case.mode == "FM05" and case.source == "incident" and case.severity == badge
    assert case.system == "photo-api" and case.metrics == {"fidelity": 0.97}
    assert len(registry.incidents()) == 1
    assert any(link["kind"] == "incident" for link in registry.links(case_id))
    # The same triage as the command line gives for the same incident.
    from redline.threatmodel import triage_incident

    doc = {k: v for k, v in registry.incidents()[0]["raw"].items()}
    assert triage_incident(doc).severity.label == badge


def test_submit_accepts_the_bearer_header_instead_of_the_form_field(registry, client):
    page = client.post("/submit", data=stolen_model_form(), headers={"Authorization": f"Bearer {WRITE}"})
    assert page.status_code == 201 and len(registry.incidents()) == 1


@pytest.mark.parametrize("token", [None, "", "wrong", WRITE + "x", READ])
def test_submit_without_the_write_token_stores_nothing(registry, token):
    client = TestClient(create_app(registry, write_token=WRITE, read_token=READ))
    form = stolen_model_form(**({"token": token} if token is not None else {}))
    page = client.post("/submit", data=form, headers={"Authorization": f"Bearer {READ}"})
    assert page.status_code == 401 and "write token" in page.text
    assert 'value="Competitor app returns the same tags as our photo API"' in page.text  # the form is kept
    assert registry.incidents() == [] and registry.search().total == 0


def test_script_in_a_title_is_shown_as_text_everywhere(registry, client):
    title = '<script>alert("pwned")</script> stolen model <img src=x onerror=alert(1)>'
    page = client.post("/submit", data=stolen_model_form(title=title, token=WRITE))
    assert page.status_code == 201
    case_id = re.search(r'href="/cases/([0-9a-f]+)"', page.text).group(1)
    for html in (page.text, client.get(f"/cases/{case_id}").text, client.get("/search").text):
        assert "<script" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert registry.get(case_id).title == title  # stored as given, escaped only when shown


def test_invalid_incident_is_refused_with_the_reason_and_the_form_kept(registry, client):
    cases = [
        (stolen_model_form(token=WRITE, metrics="fidelty: 0.97"), "unknown metric 'fidelty'"),
        (stolen_model_form(token=WRITE, what_happened=""), "what happened is required"),
        (stolen_model_form(token=WRITE, **{"facts.queries": "many"}), "whole number"),
        (stolen_model_form(token=WRITE, **{"facts.vector": "telepathy"}), "facts.vector"),
        (stolen_model_form(token=WRITE, system_yaml="serving: [1, 2"), "system description"),
    ]
    for form, reason in cases:
        page = client.post("/submit", data=form)
        assert page.status_code == 422, reason
        error = re.search(r'id="form-error">([^<]+)<', page.text).group(1).replace("&#39;", "'")
        assert reason in error and "\n" not in error
        assert "Traceback" not in page.text
    assert registry.incidents() == []


def test_incident_matching_no_mode_is_kept_without_a_case(registry, client):
    page = client.post("/submit", data={"title": "Printer jam", "what_happened": "The office printer jammed twice.",
                                        "token": WRITE})
    assert page.status_code == 201 and "no failure mode matched" in page.text
    assert len(registry.incidents()) == 1 and registry.search().total == 0


def test_json_incident_endpoint_needs_the_write_token(registry, client):
    doc = {"title": "Membership of patients revealed", "what_happened": "A researcher showed they could tell "
           "whether a patient was in the training data from the confidence scores (membership inference)."}
    assert client.post("/api/incidents", json=doc).status_code == 401
    assert client.post("/api/incidents", json=doc, headers={"Authorization": "Bearer nope"}).status_code == 401
    made = client.post("/api/incidents", json=doc, headers={"Authorization": f"Bearer {WRITE}"})
    assert made.status_code == 201 and made.json()["primary"] == "FM04"
    assert registry.get(made.json()["case"]).mode == "FM04"
    bad = client.post("/api/incidents", content=b"{not json", headers={"Authorization": f"Bearer {WRITE}"})
    assert bad.status_code == 422 and "JSON" in bad.json()["reason"]


# -- reads behind a token ----------------------------------------------------------------------------


def test_reads_can_be_token_protected(registry):
    case = registry.get(registry.add_case(sample_case(1)).id)
    client = TestClient(create_app(registry, write_token=WRITE, read_token=READ))
    for url in ("/", "/search", f"/cases/{case.id}", "/submit"):
        refused = client.get(url)
        assert refused.status_code == 401 and 'id="login-form"' in refused.text, url
        assert case.title not in refused.text
    assert client.get("/api/cases").status_code == 401
    for token in (READ, WRITE):
        assert client.get(f"/cases/{case.id}", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/api/cases", headers={"Authorization": f"Bearer {token}"}).json()["total"] == 1
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_sign_in_sets_a_read_cookie_that_never_authorises_a_write(registry):
    client = TestClient(create_app(registry, write_token=WRITE, read_token=READ))
    wrong = client.post("/login", data={"token": "guess", "next": "/search"})
    assert wrong.status_code == 401 and client.cookies.get("redline_registry_read") is None
    signed = client.post("/login", data={"token": READ, "next": "/search"}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/search"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and READ not in cookie
    assert client.get("/search").status_code == 200  # the cookie now opens the pages
    assert client.post("/submit", data=stolen_model_form()).status_code == 401  # but writes need the token
    assert registry.incidents() == []


def test_sign_in_redirects_only_within_the_site(registry):
    client = TestClient(create_app(registry, write_token=WRITE, read_token=READ))
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        answer = client.post("/login", data={"token": READ, "next": target}, follow_redirects=False)
        assert answer.headers["location"] == "/", target


def test_open_reads_need_no_token_but_writes_do(registry, client):
    registry.add_case(sample_case(1))
    assert client.get("/").status_code == 200 and client.get("/api/cases").json()["total"] == 1
    assert client.post("/submit", data=stolen_model_form()).status_code == 401


def test_pages_carry_no_script_and_a_strict_security_policy(registry, client):
    case = registry.add_case(sample_case(1))
    for url in ("/", "/search", f"/cases/{case.id}", "/submit", "/login"):
        page = client.get(url)
        assert "<script" not in page.text.lower(), url
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "form-action 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"


# -- configuration ---------------------------------------------------------------------------------


def test_app_and_server_refuse_missing_tokens_and_bad_listen(registry, monkeypatch):
    for bad in ("", "   ", None):
        with pytest.raises(UsageError, match="write token"):
            create_app(registry, write_token=bad)
    with pytest.raises(UsageError, match="read token"):
        create_app(registry, write_token=WRITE, read_token="")
    monkeypatch.delenv(WRITE_TOKEN_ENV, raising=False)
    with pytest.raises(UsageError, match=WRITE_TOKEN_ENV):
        tokens(None, None)
    monkeypatch.setenv(WRITE_TOKEN_ENV, "from-env")
    assert tokens(None, None) == (["from-env"], None)
    assert parse_listen("127.0.0.1:8765") == ("127.0.0.1", 8765) and parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("8765", "host:", "host:http", "h:70000", ""):
        with pytest.raises(UsageError, match="--listen"):
            parse_listen(bad)
