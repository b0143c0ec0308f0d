"""Does an OSV record affect one PyPI package version? (OSV schema 1.x, ``affected`` evaluation).

A version is affected when an ``affected`` entry for the package lists it explicitly in
``versions`` or falls inside one of its ECOSYSTEM (or SEMVER) ranges. GIT ranges name
commits, not releases, and are ignored; withdrawn records affect nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ECOSYSTEM = "PyPI"
_VERSION_RANGES = ("ECOSYSTEM", "SEMVER")
_LOWEST = Version("0")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` become one ``-``."""
    return str(canonicalize_name(name))


def parse_version(text: Any) -> Version | None:
    if not isinstance(text, str):
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def package_entries(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The record's ``affected`` entries for PyPI package ``name`` (already normalised)."""
    found = []
    for entry in record.get("affected") or []:
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict) or package.get("ecosystem") != ECOSYSTEM:
            continue
        if isinstance(package.get("name"), str) and normalize(package["name"]) == name:
            found.append(entry)
    return found


def affects(record: dict[str, Any], name: str, version: str) -> bool:
    """True when ``record`` (not withdrawn) affects ``name`` at ``version``."""
    if record.get("withdrawn"):
        return False
    parsed = parse_version(version)
    return any(_entry_affects(entry, version, parsed) for entry in package_entries(record, name))


def _entry_affects(entry: dict[str, Any], version: str, parsed: Version | None) -> bool:
    for listed in entry.get("versions") or []:
        if listed == version or (parsed is not None and parse_version(listed) == parsed):
            return True
    if parsed is None:
        return False  # ranges need an ordered version
    for rng in entry.get("ranges") or []:
        if isinstance(rng, dict) and rng.get("type") in _VERSION_RANGES and in_range(rng.get("events") or [], parsed):
            return True
    return False


def in_range(events: Iterable[dict[str, Any]], version: Version) -> bool:
    """Walk the events in version order, switching "affected" on at introduced and off after fixed.

    ``introduced: "0"`` means "since the first release"; ``last_affected`` includes its own
    version; ``limit`` caps the whole range.
    """
    points: list[tuple[Version, str]] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        for kind in ("introduced", "fixed", "last_affected", "limit"):
            if kind in event:
                at = _LOWEST if (kind == "introduced" and event[kind] == "0") else parse_version(event[kind])
                if at is not None:
                    points.append((at, kind))
    if any(kind == "limit" and version >= at for at, kind in points):
        return False
    affected = False
    for at, kind in sorted(points, key=lambda p: p[0]):
        if kind == "introduced" and version >= at:
            affected = True
        elif kind == "fixed" and version >= at or kind == "last_affected" and version > at:
            affected = False
    return affected


def fixed_versions(record: dict[str, Any], name: str) -> set[str]:
    """Every version a record names as ``fixed`` for the package, across all its ranges."""
    fixed = set()
    for entry in package_entries(record, name):
        for rng in entry.get("ranges") or []:
            if not isinstance(rng, dict) or rng.get("type") not in _VERSION_RANGES:
                continue
            for event in rng.get("events") or []:
                if isinstance(event, dict) and isinstance(event.get("fixed"), str):
                    fixed.add(event["fixed"])
    return fixed
