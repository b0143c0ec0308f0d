"""The failure-mode catalog: the taxonomy and the bug bar as data (``modes.yaml``).

Loading is strict, because every other part of redline keys on these records: all
seventeen codes must be present in order, no field may be missing or unknown, and
severity ranges must parse and be ordered. This module imports only PyYAML.

>>> get_mode("fm04").bug_bar.label
'Moderate to Critical'
"""
from __future__ import annotations

import dataclasses
import functools
import re
import types
from collections.abc import Mapping
from importlib import resources
from typing import Any, NamedTuple

import yaml

from ..errors import RedlineError, UsageError
from ..severity import Severity

__all__ = [
    "MODE_CODES",
    "BugBarRange",
    "CatalogError",
    "FailureMode",
    "Reference",
    "atlas_name",
    "avid_name",
    "get_mode",
    "load_modes",
    "mode_to_dict",
    "parse_modes",
]

SCHEMA_ID = "redline.modes/1"
MODE_CODES = tuple(f"FM{i:02d}" for i in range(1, 18))
KINDS = ("intentional", "unintentional")
PROPERTIES = ("confidentiality", "integrity", "availability", "safety")
KNOWLEDGE = ("black_box", "white_box")

_ATLAS_ID = re.compile(r"^AML\.T\d{4}(\.\d{3})?$")
_AVID_ID = re.compile(r"^[SEP]\d{4}$")


class CatalogError(RedlineError):
    """The catalog file is malformed (a packaging or editing mistake, not user input)."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """A publication the taxonomy cites for a failure mode."""

    title: str
    authors: tuple[str, ...] = ()
    year: int | None = None
    venue: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "authors": list(self.authors), "year": self.year,
                "venue": self.venue, "url": self.url}


@dataclasses.dataclass(frozen=True)
class BugBarRange:
    """Where a failure mode sits on the AI/ML bug bar.

    ``rated`` is False when the bug bar has no row for the threat and the range was
    chosen by analogy; ``reason`` then says how.
    """

    threat: str
    severity_min: Severity
    severity_max: Severity
    reason: str
    rated: bool = True

    def clamp(self, severity: Severity) -> Severity:
        """``severity`` moved into this range."""
        return Severity(min(max(severity, self.severity_min), self.severity_max))

    def __contains__(self, severity: object) -> bool:
        return isinstance(severity, int) and self.severity_min <= severity <= self.severity_max

    @property
    def label(self) -> str:
        """``Important to Critical``, or a single label when the range is one severity."""
        if self.severity_min == self.severity_max:
            return self.severity_min.label
        return f"{self.severity_min.label} to {self.severity_max.label}"


@dataclasses.dataclass(frozen=True)
class FailureMode:
    """One failure mode of the taxonomy (FM01..FM17)."""

    code: str
    name: str
    kind: str  # "intentional" | "unintentional"
    summary: str
    compromises: tuple[str, ...]
    knowledge: tuple[str, ...]  # attacker knowledge the taxonomy names; empty when no attacker
    violates_access: bool
    access_note: str
    bug_bar: BugBarRange
    scenarios: tuple[str, ...]
    references: tuple[Reference, ...]
    atlas: tuple[str, ...]
    avid: tuple[str, ...]
    mitigations: tuple[str, ...]

    @property
    def intentional(self) -> bool:
        return self.kind == "intentional"


# --- loading -----------------------------------------------------------------------------

class _Catalog(NamedTuple):
    modes: tuple[FailureMode, ...]
    atlas: Mapping[str, str]
    avid: Mapping[str, str]


@functools.lru_cache(maxsize=1)
def _catalog() -> _Catalog:
    text = resources.files(__package__).joinpath("modes.yaml").read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"modes.yaml is not valid YAML: {' '.join(str(exc).split())}") from None
    return _parse(data)


def load_modes() -> tuple[FailureMode, ...]:
    """The seventeen failure modes in code order, read and validated once from ``modes.yaml``."""
    return _catalog().modes


def atlas_name(technique_id: str) -> str:
    """The catalog's name for a MITRE ATLAS technique id (empty if the catalog does not cite it)."""
    return _catalog().atlas.get(technique_id, "")


def avid_name(category_id: str) -> str:
    """The catalog's name for an AVID taxonomy id (empty if the catalog does not cite it)."""
    return _catalog().avid.get(category_id, "")


def get_mode(code: str) -> FailureMode:
    """The mode with this code, in any case (``fm04`` or ``FM04``); UsageError if unknown."""
    key = str(code).strip().upper()
    for mode in load_modes():
        if mode.code == key:
            return mode
    raise UsageError(f"unknown failure mode {code!r} (codes run from FM01 to FM17; see `redline modes`)")


def mode_to_dict(mode: FailureMode) -> dict[str, Any]:
    """The JSON record of ``redline modes --json`` (severities as report labels)."""
    return {
        "code": mode.code,
        "name": mode.name,
        "kind": mode.kind,
        "summary": mode.summary,
        "compromises": list(mode.compromises),
        "knowledge": list(mode.knowledge),
        "violates_access": mode.violates_access,
        "access_note": mode.access_note,
        "bug_bar": {
            "threat": mode.bug_bar.threat,
            "severity_min": mode.bug_bar.severity_min.label,
            "severity_max": mode.bug_bar.severity_max.label,
            "rated": mode.bug_bar.rated,
            "reason": mode.bug_bar.reason,
        },
        "scenarios": list(mode.scenarios),
        "references": [ref.to_dict() for ref in mode.references],
        "atlas": list(mode.atlas),
        "avid": list(mode.avid),
        "mitigations": list(mode.mitigations),
    }


# --- validation --------------------------------------------------------------------------

_TOP_KEYS = {"schema", "atlas", "avid", "modes"}
_MODE_KEYS = {
    "code", "name", "kind", "summary", "compromises", "knowledge", "violates_access", "access_note",
    "bug_bar", "scenarios", "references", "atlas", "avid", "mitigations",
}
_BUG_BAR_KEYS = {"threat", "severity_min", "severity_max", "rated", "reason"}
_REFERENCE_KEYS = {"title", "authors", "year", "venue", "url"}
_REFERENCE_REQUIRED = {"title"}


def parse_modes(data: Any) -> tuple[FailureMode, ...]:
    """Validate a parsed catalog document and build its modes; CatalogError on any defect."""
    return _parse(data).modes


def _parse(data: Any) -> _Catalog:
    doc = _mapping(data, "the catalog", required=_TOP_KEYS, allowed=_TOP_KEYS)
    if doc["schema"] != SCHEMA_ID:
        raise CatalogError(f"catalog schema is {doc['schema']!r}, expected {SCHEMA_ID!r}")
    atlas = _id_table(doc["atlas"], "atlas", _ATLAS_ID)
    avid = _id_table(doc["avid"], "avid", _AVID_ID)
    if not isinstance(doc["modes"], list):
        raise CatalogError("catalog 'modes' must be a list")
    modes = tuple(_parse_mode(entry, index, atlas, avid) for index, entry in enumerate(doc["modes"]))
    codes = tuple(m.code for m in modes)
    if codes != MODE_CODES:
        missing = [c for c in MODE_CODES if c not in codes]
        raise CatalogError(
            f"catalog must list FM01..FM17 once each, in order (got {', '.join(codes) or 'none'}"
            + (f"; missing {', '.join(missing)}" if missing else "") + ")"
        )
    return _Catalog(modes, types.MappingProxyType(atlas), types.MappingProxyType(avid))


def _parse_mode(entry: Any, index: int, atlas: Mapping[str, str], avid: Mapping[str, str]) -> FailureMode:
    where = f"mode #{index + 1}"
    if isinstance(entry, dict) and isinstance(entry.get("code"), str):
        where = entry["code"]
    m = _mapping(entry, where, required=_MODE_KEYS, allowed=_MODE_KEYS)
    kind = _choice(m["kind"], KINDS, f"{where}.kind")
    compromises = _choices(m["compromises"], PROPERTIES, f"{where}.compromises", allow_empty=False)
    knowledge = _choices(m["knowledge"], KNOWLEDGE, f"{where}.knowledge", allow_empty=kind == "unintentional")
    if not isinstance(m["violates_access"], bool):
        raise CatalogError(f"{where}.violates_access must be true or false")
    return FailureMode(
        code=_text(m["code"], f"{where}.code"),
        name=_text(m["name"], f"{where}.name"),
        kind=kind,
        summary=_text(m["summary"], f"{where}.summary"),
        compromises=compromises,
        knowledge=knowledge,
        violates_access=m["violates_access"],
        access_note=_text(m["access_note"], f"{where}.access_note"),
        bug_bar=_parse_bug_bar(m["bug_bar"], f"{where}.bug_bar"),
        scenarios=_texts(m["scenarios"], f"{where}.scenarios"),
        references=tuple(
            _parse_reference(r, f"{where}.references[{i}]")
            for i, r in enumerate(_list(m["references"], f"{where}.references", allow_empty=False))
        ),
        atlas=_known_ids(m["atlas"], atlas, f"{where}.atlas"),
        avid=_known_ids(m["avid"], avid, f"{where}.avid", allow_empty=False),
        mitigations=_texts(m["mitigations"], f"{where}.mitigations"),
    )


def _parse_bug_bar(value: Any, where: str) -> BugBarRange:
    b = _mapping(value, where, required=_BUG_BAR_KEYS, allowed=_BUG_BAR_KEYS)
    low, high = (_severity(b[k], f"{where}.{k}") for k in ("severity_min", "severity_max"))
    if low > high:
        raise CatalogError(f"{where}: severity_min {low.label} is above severity_max {high.label}")
    if not isinstance(b["rated"], bool):
        raise CatalogError(f"{where}.rated must be true or false")
    return BugBarRange(
        threat=_text(b["threat"], f"{where}.threat"),
        severity_min=low,
        severity_max=high,
        reason=_text(b["reason"], f"{where}.reason"),
        rated=b["rated"],
    )


def _parse_reference(value: Any, where: str) -> Reference:
    r = _mapping(value, where, required=_REFERENCE_REQUIRED, allowed=_REFERENCE_KEYS)
    year = r.get("year")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool) or not 1900 < year < 2100):
        raise CatalogError(f"{where}.year must be a four-digit year, not {year!r}")
    url = r.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        raise CatalogError(f"{where}.url must be an http(s) address, not {url!r}")
    venue = r.get("venue")
    return Reference(
        title=_text(r["title"], f"{where}.title"),
        authors=_texts(r.get("authors", []), f"{where}.authors", allow_empty=True),
        year=year,
        venue=_text(venue, f"{where}.venue") if venue is not None else None,
        url=url,
    )


def _mapping(value: Any, where: str, *, required: set[str], allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{where} must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise CatalogError(f"{where} has unknown key(s) {', '.join(map(str, unknown))}")
    missing = sorted(required - set(value))
    if missing:
        raise CatalogError(f"{where} is missing {', '.join(missing)}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where} must be non-empty text")
    return " ".join(value.split())


def _list(value: Any, where: str, *, allow_empty: bool) -> list[Any]:
    if not isinstance(value, list):
        raise CatalogError(f"{where} must be a list")
    if not value and not allow_empty:
        raise CatalogError(f"{where} must not be empty")
    return value


def _texts(value: Any, where: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where, allow_empty=allow_empty)))


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise CatalogError(f"{where} is {value!r}; choose from {', '.join(choices)}")
    return value


def _choices(value: Any, choices: tuple[str, ...], where: str, *, allow_empty: bool) -> tuple[str, ...]:
    items = _list(value, where, allow_empty=allow_empty)
    picked = tuple(_choice(v, choices, where) for v in items)
    if len(set(picked)) != len(picked):
        raise CatalogError(f"{where} lists a value twice")
    return picked


def _severity(value: Any, where: str) -> Severity:
    try:
        severity = Severity.parse(value)
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    if value is None or severity is Severity.NONE:
        raise CatalogError(f"{where} must be Low, Moderate, Important or Critical")
    return severity


def _id_table(value: Any, where: str, pattern: re.Pattern[str]) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise CatalogError(f"catalog '{where}' must map ids to names")
    for key, name in value.items():
        if not isinstance(key, str) or not pattern.match(key):
            raise CatalogError(f"catalog '{where}' has a malformed id {key!r}")
        _text(name, f"{where}.{key}")
    return value


def _known_ids(value: Any, table: Mapping[str, str], where: str, *, allow_empty: bool = True) -> tuple[str, ...]:
    ids = tuple(_list(value, where, allow_empty=allow_empty))
    for item in ids:
        if item not in table:
            raise CatalogError(f"{where} cites {item!r}, which the catalog's id table does not define")
    if len(set(ids)) != len(ids):
        raise CatalogError(f"{where} lists an id twice")
    return ids
