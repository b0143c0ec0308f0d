"""One vulnerability's evidence as metrics; the severities are the FM11 triage rules."""
from redline.deps.rating import advisory_metrics, rate
from redline.severity import Severity

CVSS_98 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
CVSS_65 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N"
CVSS_75 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
CVSS_39 = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"  # 3.1


def _scored(vector):
    return {"id": "A", "severity": [{"type": "CVSS_V3", "score": vector}]}


def test_thresholds_follow_the_bug_bar():
    assert rate([_scored(CVSS_98)]).severity is Severity.CRITICAL
    assert rate([_scored(CVSS_75)]).severity is Severity.IMPORTANT
    assert rate([_scored(CVSS_65)]).severity is Severity.MODERATE
    assert rate([_scored(CVSS_39)]).severity is Severity.LOW


def test_cvss_vector_wins_over_database_label():
    rating = rate([{**_scored(CVSS_65), "database_specific": {"severity": "CRITICAL"}}])
    assert rating.severity is Severity.MODERATE and rating.cvss == 6.5
    assert "6.5" in rating.rationale


def test_highest_score_of_aliases_counts_including_per_package_severity():
    records = [
        _scored(CVSS_65),
        {
            "id": "B",
            "affected": [
                {"package": {"ecosystem": "PyPI", "name": "x"}, "severity": [{"type": "CVSS_V3", "score": CVSS_75}]}
            ],
        },
    ]
    rating = rate(records)
    assert rating.cvss == 7.5 and rating.severity is Severity.IMPORTANT


def test_database_labels_and_default():
    assert rate([{"id": "A", "database_specific": {"severity": "HIGH"}}]).severity is Severity.IMPORTANT
    assert rate([{"id": "A", "database_specific": {"severity": "moderate"}}]).severity is Severity.MODERATE
    assert rate([{"id": "A", "database_specific": {"severity": "MEDIUM"}}]).severity is Severity.MODERATE
    assert rate([{"id": "A", "database_specific": {"severity": "LOW"}}]).severity is Severity.LOW
    # The highest label of the aliases counts; a label nobody knows counts as none.
    both = [{"id": "A", "database_specific": {"severity": "LOW"}}, {"id": "B", "database_specific": {"severity": "HIGH"}}]
    assert rate(both).severity is Severity.IMPORTANT
    unrated = rate([{"id": "A", "database_specific": {"severity": "UNKNOWN"}}])
    assert unrated.severity is Severity.MODERATE and unrated.cvss is None
    assert "does not give" in unrated.rationale


def test_malformed_and_v4_vectors_fall_back_to_the_label():
    record = {
        "id": "A",
        "severity": [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/garbage"},
            {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
        ],
        "database_specific": {"severity": "LOW"},
    }
    assert advisory_metrics([record])["max_cvss"] is None
    assert rate([record]).severity is Severity.LOW


def test_code_execution_raises_to_critical():
    base = _scored(CVSS_65)
    for text in (
        {"summary": "Remote Code Execution in model loader"},
        {"details": "A crafted file lets an attacker execute arbitrary code."},
        {"details": "Deserialization of untrusted data in load() can execute commands."},
        {"summary": "RCE via template injection"},
    ):
        rating = rate([{**base, **text}])
        assert rating.severity is Severity.CRITICAL, text
        assert "code execution" in rating.rationale and "6.5" in rating.rationale
    assert rate([{**base, "summary": "Denial of service through a long header"}]).severity is Severity.MODERATE
    # "arbitrary" alone, or "source" containing "rce", must not trigger it
    assert rate([{**base, "details": "Arbitrary file read from the resources folder."}]).severity is Severity.MODERATE


def test_malicious_package_reports_are_critical():
    rating = rate([{"id": "MAL-2024-1", "summary": "Malicious code in x"}])
    assert rating.severity is Severity.CRITICAL and "malicious" in rating.rationale
    metrics = advisory_metrics([{"id": "MAL-2024-1", "summary": "Remote code execution"}])
    assert metrics["malicious_records"] == 1 and metrics["code_execution_records"] == 0  # counted once
