"""The result records of a file scan: one ``FileReport`` per file, made of ``Issue`` records.

A verdict is derived from the issues, never stored separately, so that it cannot disagree
with them: a security finding of Medium or worse makes a file ``unsafe``; an integrity
problem (the file could not be read to its end exactly as a loader would read it) makes it
``error``; only a file with neither is ``safe``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("Critical", "High", "Medium", "Low")
_RANK = {name: rank for rank, name in enumerate(reversed(SEVERITIES), start=1)}

# Issue kinds that mean "the scanner could not vouch for the whole file"; every other kind
# is a security finding about content that was read.
ERROR_KINDS = frozenset(
    {
        "parse-error",  # malformed or truncated stream
        "trailing-data",  # bytes after the end that no loader layout accounts for
        "frame-mismatch",  # pickle frames that the pure-Python loader rejects
        "unknown-format",
        "unsupported",  # a legal feature the scanner cannot read (e.g. an unknown codec)
        "too-large",
        "depth-limit",
        "archive-integrity",  # bad CRC, overlapping or hidden members, name mismatch ...
        "encrypted",
        "special-file",  # a FIFO, device or socket: never read
        "not-followed",  # a link out of the scanned folder, under --strict
    }
)


@dataclass(frozen=True)
class Issue:
    """One problem found in a file (or in ``member``, a path inside an archive)."""

    severity: str
    kind: str
    detail: str
    member: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in _RANK:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def is_error(self) -> bool:
        """True when the issue says the file could not be fully read (verdict ``error``)."""
        return self.kind in ERROR_KINDS

    @property
    def rank(self) -> int:
        return _RANK[self.severity]

    def to_dict(self) -> dict:
        out = {"severity": self.severity, "kind": self.kind, "detail": self.detail}
        if self.member is not None:
            out["member"] = self.member
        return out


@dataclass
class FileReport:
    """What the scanner concluded about one file."""

    path: str
    format: str
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts worth showing that are not issues
    contents: list[str] = field(default_factory=list, repr=False)  # formats met inside (not serialised)

    @property
    def verdict(self) -> str:
        """``unsafe`` beats ``error`` beats ``safe``: a found payload is the stronger news."""
        if any(not i.is_error and i.rank >= _RANK["Medium"] for i in self.issues):
            return "unsafe"
        if any(i.is_error for i in self.issues):
            return "error"
        return "safe"

    @property
    def is_safe(self) -> bool:
        return self.verdict == "safe"

    @property
    def worst(self) -> str | None:
        """Severity label of the worst issue, or None when there is none."""
        if not self.issues:
            return None
        return max(self.issues, key=lambda i: i.rank).severity

    def to_dict(self) -> dict:
        out = {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict,
            "issues": [issue.to_dict() for issue in self.issues],
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out
