"""The one place the web pages call the registry's store; everything else sees this API.

A rename in the store costs an edit here only. The pages need: search with filters and
paging, one case, its replays and links, the dashboard's counts, storing a submitted
incident, and the bytes of an artifact kept by hash.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from ..case import FailureCase

__all__ = ["CaseStore", "Event", "Filters", "Link", "Overview", "Replay", "SearchPage", "open_store"]


@dataclasses.dataclass(frozen=True)
class Filters:
    q: str = ""
    mode: str = ""
    severity: str = ""
    system: str = ""
    status: str = ""

    def as_query(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}


@dataclasses.dataclass(frozen=True)
class SearchPage:
    cases: list[FailureCase]
    total: int
    number: int  # 1-based
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.cases else 0

    @property
    def last(self) -> int:
        return self.first + len(self.cases) - 1 if self.cases else 0


@dataclasses.dataclass(frozen=True)
class Replay:
    at: str
    outcome: str
    target: str
    details: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Event:
    at: str
    event: str  # added | observed | status | replay | linked
    by: str
    details: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Link:
    relation: str
    kind: str  # case | incident
    id: str
    label: str


@dataclasses.dataclass(frozen=True)
class Overview:
    total: int
    by_mode: Counter
    by_severity: Counter
    by_status: Counter
    months: list[tuple[str, Counter]]  # ("2026-12", Counter of severity labels), oldest first

    @property
    def most_in_a_mode(self) -> int:
        return max(self.by_mode.values(), default=0)


class CaseStore:
    """The pages' view of a :class:`~redline.registry.store.Registry`."""

    def __init__(self, registry: Any):
        self.registry = registry

    @property
    def url(self) -> str:
        """The registry's URL with any password hidden (for the startup line)."""
        return self.registry.display_url

    def search(self, filters: Filters, page: int, per_page: int) -> SearchPage:
        found = self.registry.search(filters.q, mode=filters.mode or None, severity=filters.severity or None,
                                     system=filters.system or None, status=filters.status or None,
                                     limit=per_page, offset=(page - 1) * per_page)
        return SearchPage(list(found.cases), int(found.total), page, per_page)

    def get(self, case_id: str) -> FailureCase | None:
        from ..store import CaseNotFound

        try:
            return self.registry.get(case_id)
        except CaseNotFound:
            return None

    def replays(self, case_id: str) -> list[Replay]:
        out = []
        for row in self.registry.replays(case_id):
            details = {k: row[k] for k in ("replayed_status", "reason", "data", "added_by") if row.get(k)}
            if row.get("metrics"):
                details["metrics"] = row["metrics"]
            out.append(Replay(str(row["at"]), str(row["outcome"]), str(row.get("target") or ""), details))
        return out

    def events(self, case_id: str) -> list[Event]:
        """What happened to the case, oldest first: added, seen again, status changes, replays, links."""
        return [Event(str(row["at"]), str(row["event"]), str(row.get("added_by") or ""), dict(row.get("detail") or {}))
                for row in self.registry.history(case_id)]

    def links(self, case_id: str) -> list[Link]:
        from ..store import CaseNotFound

        out = []
        for row in self.registry.links(case_id):
            kind, other = str(row["kind"]), str(row["id"])
            relation = str(row["relation"]) if row.get("direction") != "from" else f"{row['relation']} (from)"
            try:
                label = (self.registry.get(other).title if kind == "case"
                         else str(self.registry.get_incident(other).get("title") or ""))
            except CaseNotFound:  # the other end was removed; the link still says what it was
                label = ""
            out.append(Link(relation, kind, other, label))
        return out

    def overview(self) -> Overview:
        by_mode: Counter = Counter()
        by_severity: Counter = Counter()
        by_status: Counter = Counter()
        months: dict[str, Counter] = {}
        for row in self.registry.counts():
            n = int(row["cases"])
            by_mode[row["mode"]] += n
            by_severity[row["severity"]] += n
            by_status[row["status"]] += n
            months.setdefault(str(row["month"]), Counter())[row["severity"]] += n
        return Overview(sum(by_mode.values()), by_mode, by_severity, by_status, sorted(months.items()))

    def add_incident(self, incident: dict[str, Any], *, added_by: str) -> tuple[str, str | None]:
        """Store a triaged incident and its case; (incident id, case id or None)."""
        added = self.registry.add_incident(incident, added_by=added_by)
        return added.incident_id, (added.case.id if added.case is not None else None)

    def artifact(self, digest: str) -> bytes | None:
        from ..store import CaseNotFound

        try:
            return self.registry.get_artifact(digest)[0]
        except CaseNotFound:
            return None


def open_store(url: str | None) -> CaseStore:
    """The registry at ``url`` (None: $REDLINE_REGISTRY or the default file), for the pages."""
    from ..store import Registry

    return CaseStore(Registry(url))
