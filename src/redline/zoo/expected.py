"""What a scan of a zoo entry should find, and how that compares with what it found.

Each entry states expectations as data (``ZooEntry.expected``): for a mode code or a check
id, the verdict the entry should get and why:

- ``planted``: the weakness the entry was built to carry (a positive control);
- ``honest``: a real, known weakness of an honestly built model (an undefended CNN is
  evadable; any model that answers queries can be copied);
- ``hardened``: the defence of a hardened twin should hold (a negative control).

A check-level expectation wins over its mode's. The demo shows each expectation beside the
verdict found and marks where they differ, and labels every vulnerable finding with the
expectation that explains it, so a red badge on a negative control is never unexplained.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

KINDS = ("planted", "honest", "hardened")
VERDICTS = ("vulnerable", "not_vulnerable", "not_applicable")
KIND_WORDS = {"planted": "planted weakness", "honest": "honest known weakness", "hardened": "hardened: defence holds"}


@dataclasses.dataclass(frozen=True)
class Expectation:
    selector: str  # a mode code (FM04) or a check id (FM07.eot_patch)
    verdict: str
    kind: str
    why: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"expected verdict must be one of {VERDICTS}, not {self.verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"expectation kind must be one of {KINDS}, not {self.kind!r}")
        if not (self.selector[:2] == "FM" and self.selector[2:4].isdigit()):
            raise ValueError(f"an expectation names a mode code or check id, not {self.selector!r}")

    def covers(self, check: str) -> bool:
        return check == self.selector or ("." not in self.selector and check.split(".", 1)[0] == self.selector)

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def expect(selector: str, verdict: str, kind: str, why: str = "") -> Expectation:
    return Expectation(selector, verdict, kind, why)


@dataclasses.dataclass(frozen=True)
class Comparison:
    expectation: Expectation
    found: str  # a verdict, "error", or "not run"
    checks: tuple[str, ...]

    @property
    def agrees(self) -> bool:
        return self.found == self.expectation.verdict

    def to_dict(self) -> dict[str, Any]:
        return {**self.expectation.to_dict(), "found": self.found, "agrees": self.agrees, "checks": list(self.checks)}


def explaining(expectations: Sequence[Expectation], check: str) -> Expectation | None:
    """The expectation that speaks for ``check``: its own, else its mode's."""
    own = [e for e in expectations if e.selector == check]
    if own:
        return own[0]
    return next((e for e in expectations if e.covers(check)), None)


def compare(expectations: Sequence[Expectation], findings: Iterable[Any]) -> list[Comparison]:
    """Each expectation against the verdicts of the findings it covers.

    A mode is vulnerable when any of its checks found the weakness; checks with an
    expectation of their own do not count towards their mode's.
    """
    findings = list(findings)
    out = []
    for e in expectations:
        mine = [f for f in findings if explaining(expectations, f.check) is e]
        statuses = {_status(f) for f in mine}
        if not mine:
            found = "not run"
        elif "vulnerable" in statuses:
            found = "vulnerable"
        elif "not_vulnerable" in statuses:
            found = "not_vulnerable"
        elif statuses == {"not_applicable"}:
            found = "not_applicable"
        else:
            found = sorted(statuses)[0]
        out.append(Comparison(e, found, tuple(f.check for f in mine)))
    return out


def finding_note(expectations: Sequence[Expectation], finding: Any) -> tuple[str, bool | None]:
    """A few words on a finding's verdict against expectations, and whether it agrees (None: no expectation)."""
    e = explaining(expectations, finding.check)
    status = _status(finding)
    if e is None:
        return ("no expectation stated" if status == "vulnerable" else ""), None
    if status == "vulnerable":
        if e.verdict == "vulnerable":
            return f"expected: {KIND_WORDS[e.kind]}", True
        return f"differs: expected {e.verdict.replace('_', ' ')} ({KIND_WORDS[e.kind]})", False
    if e.verdict == "vulnerable" and status == "not_vulnerable" and "." in e.selector:
        return f"differs: expected vulnerable ({KIND_WORDS[e.kind]})", False
    return "", None


def _status(finding: Any) -> str:
    status = getattr(finding, "status", "")
    return getattr(status, "value", status)
