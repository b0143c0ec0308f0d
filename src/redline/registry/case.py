"""The failure-case record: one failure of one ML system, kept so it can be found,
compared with others and reproduced.

A case comes from a scan finding (``source="finding"``), a triaged incident
(``source="incident"``) or an imported AVID report or ATLAS case study
(``source="avid"|"atlas"``). The store, the command line, the web pages and the
exchange formats all read and write this one record; ``to_dict``/``from_dict`` are its
JSON form (``redline.case/1``).
"""
from __future__ import annotations

import dataclasses
import enum
from typing import Any

SCHEMA = "redline.case/1"


class CaseStatus(str, enum.Enum):
    OPEN = "open"
    FIXED = "fixed"
    REGRESSED = "regressed"
    WONT_FIX = "wont-fix"


@dataclasses.dataclass
class FailureCase:
    title: str
    mode: str  # FM01..FM17
    severity: str = "None"  # a bug-bar label: Critical, Important, Moderate, Low, None
    rationale: str = ""
    summary: str = ""
    remediation: str = ""
    status: CaseStatus = CaseStatus.OPEN
    source: str = "finding"  # finding | incident | avid | atlas | manual
    # What failed: the system (a product or service), the model and its version, and the
    # target spec redline reached it by (``zoo:NAME``, a file, an endpoint URL).
    system: str = ""
    model: str = ""
    version: str = ""
    target: str = ""
    data: str = ""
    # How to reproduce it: the check and the exact parameters, seed and budget it ran with.
    finding_id: str = ""
    check: str = ""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    budget: int | None = None
    # What was measured and shown: metrics and evidence as in report.json, artifacts as
    # {name: sha256} of files kept by content hash.
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    references: list[str] = dataclasses.field(default_factory=list)
    tags: list[str] = dataclasses.field(default_factory=list)
    atlas: list[str] = dataclasses.field(default_factory=list)  # e.g. AML.T0024
    avid: list[str] = dataclasses.field(default_factory=list)  # e.g. AVID-2023-V001 or taxonomy codes
    added_by: str = ""
    # Set by the store: its id for the case and when it was created and last changed
    # (ISO-8601, UTC).
    id: str = ""
    created_at: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = CaseStatus(self.status).value
        return {"schema": SCHEMA, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FailureCase:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "status" in kw:
            kw["status"] = CaseStatus(kw["status"])
        return cls(**kw)
