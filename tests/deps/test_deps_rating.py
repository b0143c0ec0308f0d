from redline.deps.rating import rate, rules, severity_for_score
from redline.severity import Severity

CVSS_98 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
CVSS_65 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N"
CVSS_75 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"


def test_thresholds_follow_the_bug_bar():
    assert severity_for_score(9.0) is Severity.CRITICAL
    assert severity_for_score(8.9) is Severity.IMPORTANT
    assert severity_for_score(7.0) is Severity.IMPORTANT
    assert severity_for_score(6.9) is Severity.MODERATE
    assert severity_for_score(4.0) is Severity.MODERATE
    assert severity_for_score(3.9) is Severity.LOW
    assert severity_for_score(0.0) is Severity.LOW


def test_cvss_vector_wins_over_database_label():
    rating = rate(
        [
            {
                "id": "A",
                "severity": [{"type": "CVSS_V3", "score": CVSS_65}],
                "database_specific": {"severity": "CRITICAL"},
            }
        ]
    )
    assert rating.severity is Severity.MODERATE and rating.cvss == 6.5
    assert "6.5" in rating.rationale


def test_highest_score_of_aliases_counts_including_per_package_severity():
    records = [
        {"id": "A", "severity": [{"type": "CVSS_V3", "score": CVSS_65}]},
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
    assert rate([{"id": "A", "database_specific": {"severity": "LOW"}}]).severity is Severity.LOW
    unrated = rate([{"id": "A"}])
    assert unrated.severity is rules().unrated and unrated.cvss is None


def test_malformed_and_v4_vectors_fall_back_to_the_label():
    record = {
        "id": "A",
        "severity": [
            {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/garbage"},
            {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
        ],
        "database_specific": {"severity": "LOW"},
    }
    assert rate([record]).severity is Severity.LOW


def test_code_execution_raises_to_critical():
    base = {"id": "A", "severity": [{"type": "CVSS_V3", "score": CVSS_65}]}
    for text in (
        {"summary": "Remote Code Execution in model loader"},
        {"details": "A crafted file lets an attacker execute arbitrary code."},
        {"details": "Deserialization of untrusted data in load() can execute commands."},
        {"summary": "RCE via template injection"},
    ):
        rating = rate([{**base, **text}])
        assert rating.severity is Severity.CRITICAL, text
        assert "code execution" in rating.rationale
    assert rate([{**base, "summary": "Denial of service through a long header"}]).severity is Severity.MODERATE
    # "arbitrary" alone, or "source" containing "rce", must not trigger it
    assert rate([{**base, "details": "Arbitrary file read from the resources folder."}]).severity is Severity.MODERATE


def test_malicious_package_reports_are_critical():
    rating = rate([{"id": "MAL-2024-1", "summary": "Malicious code in x"}])
    assert rating.severity is Severity.CRITICAL and "malicious" in rating.rationale
