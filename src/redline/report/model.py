"""The Report: everything one scan found, in the shape of report.json (schema redline.report/1)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..catalog import MODE_CODES  # noqa: F401  the catalog's codes; report/html.py reads them from here
from ..findings import Finding, Status, _jsonable
from ..severity import Severity

SCHEMA_ID = "redline.report/1"
# Exit codes of ``redline scan`` (DESIGN.md); 2 (usage or input error) is raised, not returned.
EXIT_OK, EXIT_FINDINGS, EXIT_UNTESTED = 0, 1, 3


@dataclasses.dataclass
class Report:
    target: dict[str, Any]
    data: dict[str, Any]
    started_at: str
    finished_at: str
    findings: list[Finding]
    coverage: dict[str, str]
    tool: dict[str, str] = dataclasses.field(default_factory=dict)
    # Deployment context used for triage (from --context), echoed for the reader.
    context: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema: str = SCHEMA_ID
    # Folder the report was written to; artifacts paths in evidence are relative to it.
    out_dir: str | None = None
    # Context facts nobody stated, so triage used a default (shown as "assumed").
    context_assumed: list[str] = dataclasses.field(default_factory=list)
    # False when the scan was interrupted; pending_checks then names what did not run.
    complete: bool = True
    pending_checks: list[str] = dataclasses.field(default_factory=list)
    # "What the defences buy": the same checks against the bare and the defended model
    # (redline.pipeline.defended); None when the scan compared nothing.
    defences: dict[str, Any] | None = None
    # Checks the scan ran though the selection did not ask for them: the static scan of a
    # model file (FM09.static_scan) under a --select that leaves FM09 out. They are reported
    # and can fail the scan (exit 1), but a verdict of theirs is not a test of what was
    # asked: it does not keep a scan whose selected checks reached none from exit 3.
    added_checks: list[str] = dataclasses.field(default_factory=list)

    @property
    def worst_severity(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.NONE)

    @property
    def selected_findings(self) -> list[Finding]:
        """The findings of the checks the scan was asked to run (all but :attr:`added_checks`)."""
        added = set(self.added_checks)
        return [f for f in self.findings if f.check not in added]

    @property
    def tested_anything(self) -> bool:
        """True when at least one selected check reached a verdict (vulnerable or
        not_vulnerable); a check the scan added on its own (:attr:`added_checks`) does not count."""
        return any(f.status in (Status.VULNERABLE, Status.NOT_VULNERABLE) for f in self.selected_findings)

    @property
    def untested_reason(self) -> str:
        """Why the scan could not test what was asked ('' when it could): a check ended in
        error, or no selected check reached a verdict (all errors, not applicable or
        inconclusive, or none ran); checks the scan added (:attr:`added_checks`) are not
        what was asked, so their verdicts do not count, though their errors do."""
        errors = [f.check for f in self.findings if f.status is Status.ERROR]
        if errors:
            shown = ", ".join(errors[:5]) + (f" and {len(errors) - 5} more" if len(errors) > 5 else "")
            return f"{len(errors)} check(s) ended in error ({shown})"
        if not self.findings:
            return "no check ran"
        selected = self.selected_findings
        added = [f.check for f in self.findings if f.check in set(self.added_checks)]
        also = f"; {', '.join(added)} ran but was not selected" if added else ""
        if not selected:
            return f"no selected check ran{also}"
        if not self.tested_anything:
            kinds = sorted({f.status.value for f in selected})
            which = "selected check" if added else "check"
            return f"no {which} reached a verdict (all {' or '.join(kinds)}{also})"
        return ""

    def exit_code(self, fail_on: Severity | str = "important") -> int:
        """The ``redline scan`` exit code: 1 when a finding reaches ``fail_on`` ("never": no
        finding does), else 3 when the scan could not test what was asked
        (:attr:`untested_reason`), else 0."""
        if not (isinstance(fail_on, str) and fail_on.lower() == "never"):
            threshold = Severity.parse(fail_on)
            if self.worst_severity is not Severity.NONE and self.worst_severity >= threshold:
                return EXIT_FINDINGS
        return EXIT_UNTESTED if self.untested_reason else EXIT_OK

    def by_status(self, status: Status | str) -> list[Finding]:
        status = Status(status)
        return [f for f in self.findings if f.status is status]

    def summary(self) -> str:
        """A few lines for a terminal or an assertion message."""
        lines = [f"redline scan of {self.target.get('spec')}: worst severity {self.worst_severity.label}"]
        if not self.complete:
            lines[0] += f" (INCOMPLETE: interrupted, {len(self.pending_checks)} checks not run)"
        for f in self.findings:
            sev = f.severity.label if f.status is Status.VULNERABLE else "-"
            extra = f" ({f.reason})" if f.reason else ""
            lines.append(f"  {f.check:<28} {f.status.value:<15} {sev:<10} {f.title}{extra}")
        tested = sum(1 for v in self.coverage.values() if v == "tested")
        lines.append(f"  coverage: {tested}/17 failure modes tested")
        undecided = len(self.by_status(Status.INCONCLUSIVE))
        if undecided:
            lines.append(f"  {undecided} check(s) inconclusive: their sample or budget could not decide (reasons above)")
        if self.untested_reason:
            lines.append(f"  not tested as asked: {self.untested_reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from ..version import __version__

        return _jsonable(
            {
                "schema": self.schema,
                "tool": self.tool or {"name": "redline", "version": __version__},
                "target": self.target,
                "data": self.data,
                "context": self.context,
                "context_assumed": self.context_assumed,
                "complete": self.complete,
                "pending_checks": self.pending_checks,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "findings": [f.to_dict() for f in self.findings],
                "coverage": self.coverage,
                # Only when the scan compared a bare and a defended model (an additive field).
                **({"defences": self.defences} if self.defences is not None else {}),
                # Only when the scan ran checks it was not asked for (an additive field).
                **({"added_checks": self.added_checks} if self.added_checks else {}),
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        return cls(
            target=d["target"],
            data=d["data"],
            started_at=d["started_at"],
            finished_at=d["finished_at"],
            findings=[Finding.from_dict(f) for f in d["findings"]],
            coverage=d["coverage"],
            tool=d.get("tool", {}),
            context=d.get("context", {}),
            context_assumed=list(d.get("context_assumed", [])),
            complete=bool(d.get("complete", True)),
            pending_checks=list(d.get("pending_checks", [])),
            schema=d.get("schema", SCHEMA_ID),
            defences=d.get("defences"),
            added_checks=list(d.get("added_checks", [])),
        )

    # Writers live in redline.report.writers; these are conveniences for the Python API.
    def to_json(self, path: str | Path) -> Path:
        from .writers import write

        return write(self, "json", path)

    def to_markdown(self, path: str | Path) -> Path:
        from .writers import write

        return write(self, "md", path)

    def to_html(self, path: str | Path) -> Path:
        from .writers import write

        return write(self, "html", path)

    def to_sarif(self, path: str | Path) -> Path:
        from .writers import write

        return write(self, "sarif", path)

    def to_junit(self, path: str | Path) -> Path:
        from .writers import write

        return write(self, "junit", path)
