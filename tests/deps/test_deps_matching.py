import pytest
from packaging.version import Version

from redline.deps.matching import affects, fixed_versions, in_range, normalize


def record(**affected):
    return {"id": "TEST-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "Some_Pkg"}, **affected}]}


def events(*pairs):
    return [{kind: value} for kind, value in pairs]


@pytest.mark.parametrize(
    "version, expected",
    [("0.1", True), ("1.9", True), ("2.0", False), ("2.4", False), ("2.5", True), ("2.9.9", True), ("3.0", False)],
)
def test_range_with_two_intervals(version, expected):
    evs = events(("introduced", "0"), ("fixed", "2.0"), ("introduced", "2.5"), ("fixed", "3.0"))
    assert in_range(evs, Version(version)) is expected


def test_events_are_ordered_by_version_not_by_position():
    evs = events(("fixed", "3.0"), ("introduced", "2.5"), ("fixed", "2.0"), ("introduced", "1.0"))
    assert in_range(evs, Version("1.5")) and in_range(evs, Version("2.6"))
    assert not in_range(evs, Version("2.2")) and not in_range(evs, Version("0.5"))


def test_last_affected_is_inclusive():
    evs = events(("introduced", "1.0"), ("last_affected", "1.4.2"))
    assert in_range(evs, Version("1.4.2"))
    assert not in_range(evs, Version("1.4.3"))
    assert not in_range(evs, Version("0.9"))


def test_limit_caps_the_range():
    evs = events(("introduced", "0"), ("limit", "2.0"))
    assert in_range(evs, Version("1.0")) and not in_range(evs, Version("2.0"))


def test_prereleases_sort_before_their_release():
    evs = events(("introduced", "0"), ("fixed", "2.0"))
    assert in_range(evs, Version("2.0rc1"))


def test_explicit_versions_match_by_pep440_equality():
    rec = record(versions=["1.0", "1.2.0"])
    assert affects(rec, "some-pkg", "1.0.0")  # 1.0.0 == 1.0
    assert affects(rec, "some-pkg", "1.2")
    assert not affects(rec, "some-pkg", "1.1")


def test_unparseable_installed_version_only_matches_listed_strings():
    rec = record(versions=["weird-build"], ranges=[{"type": "ECOSYSTEM", "events": events(("introduced", "0"))}])
    assert affects(rec, "some-pkg", "weird-build")
    assert not affects(rec, "some-pkg", "other-build")


def test_names_are_normalised():
    assert normalize("Some_Pkg") == normalize("some.pkg") == normalize("SOME--pkg") == "some-pkg"
    rec = record(ranges=[{"type": "ECOSYSTEM", "events": events(("introduced", "0"))}])
    assert affects(rec, "some-pkg", "1.0")
    assert not affects(rec, "other-pkg", "1.0")


def test_git_ranges_are_ignored_and_semver_is_used():
    git = record(ranges=[{"type": "GIT", "repo": "x", "events": events(("introduced", "0"), ("fixed", "abc"))}])
    assert not affects(git, "some-pkg", "1.0")
    semver = record(ranges=[{"type": "SEMVER", "events": events(("introduced", "1.0.0"), ("fixed", "1.2.0"))}])
    assert affects(semver, "some-pkg", "1.1.5") and not affects(semver, "some-pkg", "1.2.0")


def test_withdrawn_and_other_ecosystems_never_match():
    rec = record(ranges=[{"type": "ECOSYSTEM", "events": events(("introduced", "0"))}])
    assert not affects({**rec, "withdrawn": "2024-01-01T00:00:00Z"}, "some-pkg", "1.0")
    npm = {"id": "X", "affected": [{"package": {"ecosystem": "npm", "name": "some-pkg"}, "versions": ["1.0"]}]}
    assert not affects(npm, "some-pkg", "1.0")


def test_fixed_versions_collects_every_range():
    rec = record(
        ranges=[
            {"type": "ECOSYSTEM", "events": events(("introduced", "0"), ("fixed", "1.5"))},
            {"type": "ECOSYSTEM", "events": events(("introduced", "2.0"), ("fixed", "2.3"))},
            {"type": "GIT", "repo": "x", "events": events(("introduced", "0"), ("fixed", "deadbeef"))},
        ]
    )
    assert fixed_versions(rec, "some-pkg") == {"1.5", "2.3"}
