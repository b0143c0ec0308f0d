"""The registry's Python API: ``Registry(url)`` records, finds and follows failure cases.

Every write is one transaction: a report is recorded whole or not at all, so a writer
killed half-way leaves the database as it was, and running the same import again records
each case once (case ids and finding ids are unique in the database, and a re-submitted
case is found before it would be added). Writers queue: SQLite takes its write lock at the
start of a transaction, PostgreSQL serialises registry writes with an advisory lock.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import dedup, schema
from .case import CaseStatus, FailureCase
from .db import (
    connection_error,
    display_url,
    make_engine,
    migrate,
    resolve_url,
    write_transaction,
)

__all__ = ["REPLAY_OUTCOMES", "AddResult", "CaseNotFound", "IncidentAdded", "Page", "Registry"]

REPLAY_OUTCOMES = ("fixed", "regressed", "still-failing", "error")
SEVERITIES = ("Critical", "Important", "Moderate", "Low", "None")
_WRITE_LOCK = 720918  # PostgreSQL advisory lock key of registry writes
_RETRIES = 5
_WORD = re.compile(r"\w+", re.UNICODE)


class CaseNotFound(UsageError):
    """No case (or incident) has the id asked for."""


@dataclasses.dataclass(frozen=True)
class AddResult:
    id: str  # the case's id
    new: bool  # False: an existing case was seen again
    matched_by: str  # new | finding-id | content
    similarity: float | None = None
    status_change: str = ""  # e.g. "open -> fixed" when a report closed or reopened the case


@dataclasses.dataclass(frozen=True)
class IncidentAdded:
    incident_id: str
    new: bool
    severity: str
    case: AddResult | None  # None when triage matched no failure mode


@dataclasses.dataclass(frozen=True)
class Page:
    cases: list[FailureCase]
    total: int
    limit: int
    offset: int


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


def _case_id_for(case: FailureCase) -> str:
    """Deterministic for a finding (the same finding has the same case id in every registry), random otherwise."""
    seed = f"finding:{case.finding_id}" if case.finding_id else f"new:{uuid.uuid4().hex}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


def _search_text(case: FailureCase) -> str:
    parts = [case.title, case.summary, case.rationale, case.mode, case.check, case.system, case.model,
             case.target, " ".join(case.tags), " ".join(case.atlas), " ".join(case.avid), case.finding_id]
    return " ".join(p for p in parts if p)


def _dedup_text(case: FailureCase) -> str:
    return dedup.case_text(case.mode, case.check, case.target, case.title, case.summary)


def _row(case: FailureCase, sig: list[int]) -> dict[str, Any]:
    return {
        "id": case.id, "finding_id": case.finding_id or None, "title": case.title, "mode": case.mode,
        "severity": case.severity, "rationale": case.rationale, "summary": case.summary,
        "remediation": case.remediation, "status": CaseStatus(case.status).value, "source": case.source,
        "system": case.system, "model": case.model, "version": case.version, "target": case.target,
        "data": case.data, "check_id": case.check, "params": case.params, "seed": case.seed,
        "budget": case.budget, "metrics": case.metrics, "evidence": case.evidence, "artifacts": case.artifacts,
        "refs": case.references, "tags": case.tags, "atlas": case.atlas, "avid": case.avid,
        "added_by": case.added_by, "created_at": case.created_at, "updated_at": case.updated_at,
        "signature": sig, "search_text": _search_text(case),
    }


# The columns a FailureCase is read from (not the signature and search text, which only the store reads).
_CASE_COLUMNS = [col for col in schema.cases.c if col.name not in ("signature", "search_text")]


def _case(row: Any) -> FailureCase:
    m = row._mapping
    return FailureCase(
        id=m["id"], finding_id=m["finding_id"] or "", title=m["title"], mode=m["mode"], severity=m["severity"],
        rationale=m["rationale"], summary=m["summary"], remediation=m["remediation"],
        status=CaseStatus(m["status"]), source=m["source"], system=m["system"], model=m["model"],
        version=m["version"], target=m["target"], data=m["data"], check=m["check_id"], params=m["params"] or {},
        seed=m["seed"], budget=m["budget"], metrics=m["metrics"] or {}, evidence=m["evidence"] or {},
        artifacts=m["artifacts"] or {}, references=m["refs"] or [], tags=m["tags"] or [], atlas=m["atlas"] or [],
        avid=m["avid"] or [], added_by=m["added_by"], created_at=m["created_at"], updated_at=m["updated_at"],
    )


def _target_digest(evidence: Any) -> Any:
    """The digest of the full target spec a finding records when its target is shown redacted."""
    return evidence.get("target_digest") if isinstance(evidence, dict) else None


def _validate(case: FailureCase) -> None:
    from ..catalog import MODE_CODES

    if not case.title.strip():
        raise UsageError("a failure case needs a title")
    if case.mode not in MODE_CODES:
        raise UsageError(f"a failure case's mode must be one of FM01..FM17, not {case.mode!r}")
    if case.severity not in SEVERITIES:
        raise UsageError(f"severity must be one of {', '.join(SEVERITIES)}, not {case.severity!r}")
    try:
        CaseStatus(case.status)
    except ValueError:
        raise UsageError(f"status must be one of {', '.join(s.value for s in CaseStatus)}, not {case.status!r}") from None


def _json_safe(value: Any) -> Any:
    """What a JSON column can hold (NaN and infinities become null, as report.json writes them)."""
    from ..findings import _jsonable

    return _jsonable(value)


class Registry:
    """A failure-case registry at ``url`` (see redline.registry.db.resolve_url).

    ``create=False`` refuses to create a new SQLite file (commands that only read).
    """

    def __init__(self, url: str | None = None, *, create: bool = True):
        self.url = resolve_url(url)
        from sqlalchemy.exc import SQLAlchemyError

        self._engine = make_engine(self.url, create=create)
        try:
            migrate(self._engine)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise connection_error(self.url, exc) from None
        self.dialect = self._engine.dialect.name

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def display_url(self) -> str:
        return display_url(self.url)

    def _write(self, work):
        """Run ``work(connection)`` in one write transaction, retried when a concurrent writer won a race."""
        from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

        for attempt in range(_RETRIES):
            try:
                with write_transaction(self._engine) as conn:
                    if self.dialect == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_WRITE_LOCK})")
                    return work(conn)
            except (IntegrityError, OperationalError) as exc:
                # A unique key taken by a writer that committed first, or a lock wait that timed out:
                # the next attempt sees the other writer's rows.
                if attempt == _RETRIES - 1:
                    raise connection_error(self.url, exc) from None
                time.sleep(0.05 * (attempt + 1))
            except DBAPIError as exc:
                raise connection_error(self.url, exc) from None
        raise AssertionError("unreachable")

    def _read(self, work):
        from sqlalchemy.exc import DBAPIError

        try:
            with self._engine.connect() as conn:
                return work(conn)
        except DBAPIError as exc:
            raise connection_error(self.url, exc) from None

    # -- adding -----------------------------------------------------------------------------

    def add_case(self, case: FailureCase, *, added_by: str = "", source: str = "") -> AddResult:
        """Record ``case``, or a new observation of the case it duplicates (same finding id or near-identical)."""
        return self._write(lambda conn: self._add(conn, case, added_by or case.added_by, source))

    def add_cases(self, cases: Iterable[FailureCase], *, added_by: str = "", source: str = "") -> list[AddResult]:
        """Several cases in one transaction: all are recorded or none."""
        cases = list(cases)
        return self._write(lambda conn: [self._add(conn, c, added_by or c.added_by, source) for c in cases])

    def add_report(self, report: Mapping[str, Any] | str | Path, added_by: str = "", *, system: str = "") -> list[str]:
        """Record the vulnerable findings of a report (a report.json path or its dict); the case ids."""
        return [r.id for r in self.add_report_results(report, added_by, system=system)]

    def add_report_results(self, report: Mapping[str, Any] | str | Path, added_by: str = "", *,
                           system: str = "") -> list[AddResult]:
        """As add_report, with what happened to each finding that touched a case.

        A vulnerable finding adds a case (or an observation of one); a not-vulnerable finding
        with the id of a recorded case marks that case fixed, and a vulnerable one reopens a
        fixed case as regressed. Evidence files next to the report are stored by content.
        """
        from .ingest import case_from_finding, check_report, evidence_files, read_report

        base_dir: Path | None = None
        source = ""
        if isinstance(report, (str, Path)):
            base_dir = Path(report).parent
            source = str(report)
            report = read_report(report)
        else:
            check_report(report)
        findings = [f for f in report["findings"] if isinstance(f, dict)]
        cases, blobs = [], {}
        for f in findings:
            if f.get("status") != "vulnerable":
                continue
            case = case_from_finding(f, report, added_by=added_by, system=system)
            if base_dir is not None:
                for name, path in evidence_files(case.evidence, base_dir):
                    content = path.read_bytes()
                    sha = hashlib.sha256(content).hexdigest()
                    blobs[sha] = (content, _media_type(path))
                    case.artifacts[name] = sha
            cases.append(case)
        closing = [f for f in findings if f.get("status") == "not_vulnerable" and f.get("id")]

        def work(conn):
            for sha, (content, media) in blobs.items():
                self._put_artifact(conn, content, media, sha)
            results = [self._add(conn, c, added_by, source) for c in cases]
            for f in closing:
                change = self._close_by_finding(conn, str(f["id"]), added_by, source)
                if change is not None:
                    results.append(change)
            return results

        return self._write(work)

    def add_finding(self, finding: Mapping[str, Any], *, target: str, data: str = "", added_by: str = "",
                    system: str = "", source: str = "") -> AddResult | None:
        """Record one finding as a scan produces it (None when it neither adds nor changes a case)."""
        report = {"target": {"spec": target}, "data": {"spec": data}, "findings": [dict(finding)]}
        from .ingest import case_from_finding

        if finding.get("status") == "vulnerable":
            case = case_from_finding(finding, report, added_by=added_by, system=system)
            return self.add_case(case, added_by=added_by, source=source)
        if finding.get("status") == "not_vulnerable" and finding.get("id"):
            return self._write(lambda conn: self._close_by_finding(conn, str(finding["id"]), added_by, source))
        return None

    def add_incident(self, incident: Any, added_by: str = "") -> IncidentAdded:
        """Triage an incident (a YAML path or mapping, as ``redline triage`` reads) and record it with its case."""
        from .ingest import (
            case_from_incident,
            incident_content_id,
            triage_incident_file,
        )

        raw, triage = triage_incident_file(incident)
        raw = _json_safe(raw)
        incident_id = incident_content_id(raw)
        case = case_from_incident(raw, triage, added_by=added_by)

        def work(conn):
            from sqlalchemy import select

            exists = conn.execute(select(schema.incidents.c.id).where(schema.incidents.c.id == incident_id)).first()
            if not exists:
                conn.execute(schema.incidents.insert().values(
                    id=incident_id, external_id=str(raw.get("id") or ""), title=str(raw.get("title") or ""),
                    raw=raw, triage=_json_safe(triage), severity=str(triage.get("severity") or "None"),
                    primary_mode=str(triage.get("primary") or ""), added_by=added_by, created_at=now_iso()))
            added = self._add(conn, case, added_by, f"incident {incident_id}") if case is not None else None
            if added is not None:
                self._link(conn, "incident", incident_id, "case", added.id, "reported-as")
            return IncidentAdded(incident_id, not exists, str(triage.get("severity") or "None"), added)

        return self._write(work)

    def _add(self, conn, case: FailureCase, added_by: str, source: str) -> AddResult:
        from sqlalchemy import select

        case = dataclasses.replace(case, params=_json_safe(case.params), metrics=_json_safe(case.metrics),
                                   evidence=_json_safe(case.evidence), added_by=added_by or case.added_by)
        _validate(case)
        c = schema.cases.c
        at = now_iso()
        if case.finding_id:
            known = conn.execute(select(schema.cases).where(c.finding_id == case.finding_id)).first()
            if known is None:  # a finding merged into another case earlier
                seen = conn.execute(select(schema.observations.c.case_id)
                                    .where(schema.observations.c.finding_id == case.finding_id).limit(1)).first()
                if seen is not None:
                    known = conn.execute(select(schema.cases).where(c.id == seen.case_id)).first()
            if known is not None:
                return self._observe(conn, _case(known), case, "finding-id", None, added_by, source, at)
        sig = dedup.signature(_dedup_text(case))
        match = self._near_duplicate(conn, case, sig)
        if match is not None:
            known, score = match
            return self._observe(conn, known, case, "content", score, added_by, source, at)
        case = dataclasses.replace(case, id=case.id or _case_id_for(case), created_at=case.created_at or at,
                                   updated_at=at)
        row = _row(case, sig)
        conn.execute(schema.cases.insert().values(**row))
        conn.execute(schema.case_bands.insert(),
                     [{"case_id": case.id, "band": i, "bucket": b} for i, b in enumerate(dedup.bands(row["signature"]))])
        if self.dialect == "sqlite":
            conn.exec_driver_sql("INSERT INTO cases_fts (case_id, body) VALUES (?, ?)", (case.id, row["search_text"]))
        conn.execute(schema.observations.insert().values(
            case_id=case.id, at=at, matched_by="new", finding_id=case.finding_id, similarity=None,
            metrics=case.metrics, source=source, added_by=added_by))
        self._event(conn, case.id, "added", {"source": case.source, "from": source}, added_by, at)
        return AddResult(case.id, True, "new")

    def _observe(self, conn, known: FailureCase, seen: FailureCase, matched_by: str, score: float | None,
                 added_by: str, source: str, at: str) -> AddResult:
        conn.execute(schema.observations.insert().values(
            case_id=known.id, at=at, matched_by=matched_by, finding_id=seen.finding_id, similarity=score,
            metrics=seen.metrics, source=source, added_by=added_by))
        change = ""
        if seen.source == "finding" and known.status == CaseStatus.FIXED:
            # A fixed failure seen failing again.
            change = self._set_status(conn, known.id, known.status, CaseStatus.REGRESSED, added_by,
                                      f"seen again in {source or 'a new finding'}", at)
        else:
            self._touch(conn, known.id, at)
        self._event(conn, known.id, "observed", {"matched_by": matched_by, "similarity": score,
                                                 "finding": seen.finding_id, "from": source}, added_by, at)
        return AddResult(known.id, False, matched_by, score, change)

    def _close_by_finding(self, conn, finding_id: str, added_by: str, source: str) -> AddResult | None:
        """The same experiment (finding id) no longer fails: its open or regressed case is fixed."""
        from sqlalchemy import select

        row = conn.execute(select(schema.cases).where(schema.cases.c.finding_id == finding_id)).first()
        if row is None:
            return None
        known = _case(row)
        if known.status not in (CaseStatus.OPEN, CaseStatus.REGRESSED):
            return None
        change = self._set_status(conn, known.id, known.status, CaseStatus.FIXED, added_by,
                                  f"not vulnerable in {source or 'a new finding'}", now_iso())
        return AddResult(known.id, False, "finding-id", None, change)

    def _near_duplicate(self, conn, case: FailureCase, sig: list[int]) -> tuple[FailureCase, float] | None:
        from sqlalchemy import select

        b = schema.case_bands.c
        candidates = select(b.case_id).where(b.bucket.in_(dedup.bands(sig)))
        c = schema.cases.c
        rows = conn.execute(select(c.id, c.check_id, c.target, c.evidence, c.signature)
                            .where(c.id.in_(candidates), c.mode == case.mode)).all()
        best: tuple[str, float] | None = None
        for row in rows:
            # Different checks or different systems under test are different failures, however alike the words.
            if case.check and row.check_id and case.check != row.check_id:
                continue
            # Endpoints shown alike (a query value or key apart) are told apart by the digest of their URL.
            if case.target and row.target and (case.target != row.target
                                               or _target_digest(case.evidence) != _target_digest(row.evidence)):
                continue
            score = dedup.similarity(sig, row.signature)
            if score >= dedup.THRESHOLD and (best is None or score > best[1]):
                best = (row.id, score)
        if best is None:
            return None
        return _case(conn.execute(select(schema.cases).where(c.id == best[0])).one()), best[1]

    # -- artifacts --------------------------------------------------------------------------

    def put_artifact(self, content: bytes, media_type: str = "application/octet-stream") -> str:
        """Store bytes once by their sha256 (returned)."""
        return self._write(lambda conn: self._put_artifact(conn, content, media_type))

    def _put_artifact(self, conn, content: bytes, media_type: str, sha: str | None = None) -> str:
        from sqlalchemy import select

        sha = sha or hashlib.sha256(content).hexdigest()
        a = schema.artifacts
        if conn.execute(select(a.c.sha256).where(a.c.sha256 == sha)).first() is None:
            conn.execute(a.insert().values(sha256=sha, size=len(content), media_type=media_type, content=content,
                                           created_at=now_iso()))
        return sha

    def get_artifact(self, sha256: str) -> tuple[bytes, str]:
        """(content, media type) of a stored artifact."""
        from sqlalchemy import select

        a = schema.artifacts
        row = self._read(lambda conn: conn.execute(select(a.c.content, a.c.media_type).where(a.c.sha256 == sha256)).first())
        if row is None:
            raise CaseNotFound(f"no artifact with sha256 {sha256!r} in the registry")
        return bytes(row.content), row.media_type

    # -- reading ----------------------------------------------------------------------------

    def resolve_id(self, conn, case_id: str) -> str:
        """A case id from its id, a unique prefix of 6+ characters, or a finding id it records."""
        from sqlalchemy import or_, select

        c = schema.cases.c
        wanted = (case_id or "").strip().lower()
        if not wanted:
            raise CaseNotFound("no case id given")
        row = conn.execute(select(c.id).where(or_(c.id == wanted, c.finding_id == wanted))).first()
        if row is not None:
            return row.id
        if len(wanted) >= 6 and re.fullmatch(r"[0-9a-f]+", wanted):
            rows = conn.execute(select(c.id).where(c.id.like(f"{wanted}%")).limit(2)).all()
            if len(rows) == 1:
                return rows[0].id
            if rows:
                raise CaseNotFound(f"case id {case_id!r} matches several cases; give more characters")
        raise CaseNotFound(f"no case {case_id!r} in the registry")

    def get(self, case_id: str) -> FailureCase:
        from sqlalchemy import select

        def work(conn):
            found = self.resolve_id(conn, case_id)
            return _case(conn.execute(select(*_CASE_COLUMNS).where(schema.cases.c.id == found)).one())

        return self._read(work)

    def search(self, query: str = "", *, mode: str | None = None, severity: str | None = None,
               system: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0) -> Page:
        """Cases matching every given filter and every word of ``query`` (prefixes match), newest first."""
        from sqlalchemy import func, select, text

        if limit < 1 or offset < 0:
            raise UsageError("limit must be at least 1 and offset at least 0")
        c = schema.cases.c
        conditions = []
        if mode:
            codes = [m.strip().upper() for m in mode.split(",") if m.strip()]
            conditions.append(c.mode.in_(codes))
        if severity:
            wanted = [_severity_label(s) for s in severity.split(",") if s.strip()]
            conditions.append(c.severity.in_(wanted))
        if status:
            wanted = [_status_value(s) for s in status.split(",") if s.strip()]
            conditions.append(c.status.in_(wanted))
        if system:
            conditions.append(func.lower(c.system) == system.strip().lower())
        words = [w.lower() for w in _WORD.findall(query or "")]
        if words:
            if self.dialect == "postgresql":
                tsquery = " & ".join(f"{w}:*" for w in words)
                conditions.append(text("cases.search_vector @@ to_tsquery('simple', :tsq)").bindparams(tsq=tsquery))
            else:
                match = " ".join(f'"{w}"*' for w in words)
                conditions.append(c.id.in_(select(text("case_id")).select_from(text("cases_fts"))
                                           .where(text("cases_fts MATCH :fts")).params(fts=match)))

        def work(conn):
            total = conn.execute(select(func.count()).select_from(schema.cases).where(*conditions)).scalar_one()
            rows = conn.execute(select(*_CASE_COLUMNS).where(*conditions)
                                .order_by(c.updated_at.desc(), c.id).limit(limit).offset(offset)).all()
            return Page([_case(r) for r in rows], int(total), limit, offset)

        return self._read(work)

    def list(self, **filters: Any) -> Page:
        """As search without words."""
        return self.search("", **filters)

    def observations(self, case_id: str) -> list[dict[str, Any]]:
        return self._rows_of(schema.observations, case_id)

    def replays(self, case_id: str) -> list[dict[str, Any]]:
        return self._rows_of(schema.replays, case_id)

    def history(self, case_id: str) -> list[dict[str, Any]]:
        return self._rows_of(schema.history, case_id)

    def _rows_of(self, table, case_id: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        def work(conn):
            found = self.resolve_id(conn, case_id)
            rows = conn.execute(select(table).where(table.c.case_id == found).order_by(table.c.id)).all()
            return [dict(r._mapping) for r in rows]

        return self._read(work)

    def links(self, case_id: str) -> list[dict[str, Any]]:
        """Links from or to the case: {kind, id, relation, direction}."""
        from sqlalchemy import or_, select

        t = schema.links.c

        def work(conn):
            found = self.resolve_id(conn, case_id)
            rows = conn.execute(select(schema.links).where(or_(
                (t.source_kind == "case") & (t.source_id == found),
                (t.target_kind == "case") & (t.target_id == found))).order_by(t.id)).all()
            out = []
            for r in rows:
                outgoing = r.source_kind == "case" and r.source_id == found
                out.append({"kind": r.target_kind if outgoing else r.source_kind,
                            "id": r.target_id if outgoing else r.source_id,
                            "relation": r.relation, "direction": "to" if outgoing else "from"})
            return out

        return self._read(work)

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        from sqlalchemy import or_, select

        i = schema.incidents.c
        row = self._read(lambda conn: conn.execute(select(schema.incidents).where(
            or_(i.id == incident_id, i.external_id == incident_id))).first())
        if row is None:
            raise CaseNotFound(f"no incident {incident_id!r} in the registry")
        return dict(row._mapping)

    def incidents(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        from sqlalchemy import select

        i = schema.incidents.c
        rows = self._read(lambda conn: conn.execute(select(schema.incidents).order_by(i.created_at.desc())
                                                    .limit(limit).offset(offset)).all())
        return [dict(r._mapping) for r in rows]

    def counts(self) -> list[dict[str, Any]]:
        """Cases by month of creation, mode, severity and status (for a dashboard)."""
        from sqlalchemy import func, select

        c = schema.cases.c
        month = func.substr(c.created_at, 1, 7)
        q = (select(month.label("month"), c.mode, c.severity, c.status, func.count().label("cases"))
             .group_by(month, c.mode, c.severity, c.status).order_by(month, c.mode))
        return [dict(r._mapping) for r in self._read(lambda conn: conn.execute(q).all())]

    # -- changing ---------------------------------------------------------------------------

    def update_status(self, case_id: str, status: str | CaseStatus, *, by: str = "", note: str = "") -> FailureCase:
        new = CaseStatus(_status_value(status))

        def work(conn):
            from sqlalchemy import select

            found = self.resolve_id(conn, case_id)
            old = conn.execute(select(schema.cases.c.status).where(schema.cases.c.id == found)).scalar_one()
            self._set_status(conn, found, CaseStatus(old), new, by, note, now_iso())
            return found

        found = self._write(work)
        return self.get(found)

    def record_replay(self, case_id: str, outcome: str, *, target: str = "", data: str = "",
                      replayed_status: str = "", metrics: Mapping[str, Any] | None = None, reason: str = "",
                      by: str = "") -> int:
        """Record a replay's outcome; fixed and regressed move the case's status. The replay's id."""
        if outcome not in REPLAY_OUTCOMES:
            raise UsageError(f"a replay outcome is one of {', '.join(REPLAY_OUTCOMES)}, not {outcome!r}")

        def work(conn):
            from sqlalchemy import select

            found = self.resolve_id(conn, case_id)
            at = now_iso()
            result = conn.execute(schema.replays.insert().values(
                case_id=found, at=at, target=target, data=data, outcome=outcome, replayed_status=replayed_status,
                metrics=_json_safe(dict(metrics or {})), reason=reason, added_by=by))
            old = CaseStatus(conn.execute(select(schema.cases.c.status).where(schema.cases.c.id == found)).scalar_one())
            new = {"fixed": CaseStatus.FIXED, "regressed": CaseStatus.REGRESSED}.get(outcome)
            if new is not None and old is not CaseStatus.WONT_FIX:
                self._set_status(conn, found, old, new, by, f"replay on {target or 'the recorded target'}", at)
            self._event(conn, found, "replay", {"outcome": outcome, "target": target}, by, at)
            return int(result.inserted_primary_key[0])

        return self._write(work)

    def link(self, a: str, b: str, relation: str = "related") -> None:
        """Link two cases (ids or prefixes); linking twice is harmless."""
        if not relation.strip():
            raise UsageError("a link needs a relation, e.g. related or duplicate-of")

        def work(conn):
            first, second = self.resolve_id(conn, a), self.resolve_id(conn, b)
            if first == second:
                raise UsageError("a case cannot be linked to itself")
            self._link(conn, "case", first, "case", second, relation)
            self._event(conn, first, "linked", {"case": second, "relation": relation}, "", now_iso())

        self._write(work)

    def _link(self, conn, source_kind: str, source_id: str, target_kind: str, target_id: str, relation: str) -> None:
        from sqlalchemy import select

        t = schema.links.c
        exists = conn.execute(select(t.id).where(t.source_kind == source_kind, t.source_id == source_id,
                                                 t.target_kind == target_kind, t.target_id == target_id,
                                                 t.relation == relation)).first()
        if exists is None:
            conn.execute(schema.links.insert().values(source_kind=source_kind, source_id=source_id,
                                                      target_kind=target_kind, target_id=target_id,
                                                      relation=relation, created_at=now_iso()))

    def _set_status(self, conn, case_id: str, old: CaseStatus, new: CaseStatus, by: str, note: str, at: str) -> str:
        conn.execute(schema.cases.update().where(schema.cases.c.id == case_id).values(status=new.value, updated_at=at))
        if old is new:
            return ""
        self._event(conn, case_id, "status", {"from": old.value, "to": new.value, "note": note}, by, at)
        return f"{old.value} -> {new.value}"

    def _touch(self, conn, case_id: str, at: str) -> None:
        conn.execute(schema.cases.update().where(schema.cases.c.id == case_id).values(updated_at=at))

    def _event(self, conn, case_id: str, event: str, detail: dict[str, Any], by: str, at: str) -> None:
        conn.execute(schema.history.insert().values(case_id=case_id, at=at, event=event, detail=_json_safe(detail),
                                                    added_by=by))


def _severity_label(text: str) -> str:
    for label in SEVERITIES:
        if text.strip().lower() == label.lower():
            return label
    raise UsageError(f"severity must be one of {', '.join(SEVERITIES)}, not {text!r}")


def _status_value(status: str | CaseStatus) -> str:
    text = status.value if isinstance(status, CaseStatus) else str(status).strip().lower().replace("_", "-")
    try:
        return CaseStatus(text).value
    except ValueError:
        raise UsageError(f"status must be one of {', '.join(s.value for s in CaseStatus)}, not {status!r}") from None


def _media_type(path: Path) -> str:
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
