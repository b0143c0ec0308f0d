"""The ATLAS and AVID taxonomies as redline knows them (``catalog/taxonomies.yaml``), and the
reverse mapping from their ids back to a failure mode.

The forward mapping (mode -> ids) is the catalog's (``modes.yaml``); this module adds what
each id is (name, tactics, risk domain) and, for imports, which mode a set of ids points at.
"""
from __future__ import annotations

import dataclasses
import functools
import re
import types
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import yaml

from ...catalog import MODE_CODES, CatalogError, load_modes

__all__ = [
    "ATLAS_ID",
    "AVID_LIFECYCLE_ID",
    "AVID_SEP_ID",
    "ModeMatch",
    "Taxonomies",
    "infer_mode",
    "load_taxonomies",
    "unknown_ids",
]

ATLAS_ID = re.compile(r"^AML\.T\d{4}(\.\d{3})?$")
ATLAS_TACTIC_ID = re.compile(r"^AML\.TA\d{4}$")
AVID_SEP_ID = re.compile(r"^[SEP]\d{4}$")
AVID_LIFECYCLE_ID = re.compile(r"^L0[1-6]$")


@dataclasses.dataclass(frozen=True)
class Technique:
    id: str
    name: str
    tactics: tuple[str, ...]  # tactic ids; a sub-technique's are its parent's


@dataclasses.dataclass(frozen=True)
class Taxonomies:
    atlas_tactics: Mapping[str, str]
    atlas_techniques: Mapping[str, Technique]
    avid_version: str
    avid_domains: Mapping[str, str]  # first letter of a SEP code -> Security | Ethics | Performance
    avid_sep: Mapping[str, str]
    avid_labels: Mapping[str, str]  # AVID's own label text where it differs from the name
    avid_lifecycle: Mapping[str, str]
    mode_lifecycle: Mapping[str, tuple[str, ...]]

    def sep_label(self, code: str) -> str:
        """``S0403: Adversarial Example``, the way AVID reports spell a SEP category."""
        return f"{code}: {self.avid_labels.get(code, self.avid_sep[code])}"

    def lifecycle_label(self, code: str) -> str:
        return f"{code}: {self.avid_lifecycle[code]}"

    def risk_domain(self, code: str) -> str:
        return self.avid_domains[code[0]]


@functools.lru_cache(maxsize=1)
def load_taxonomies() -> Taxonomies:
    """The taxonomy tables, read and checked once; CatalogError on a defect in the file."""
    text = resources.files("redline.catalog").joinpath("taxonomies.yaml").read_text(encoding="utf-8")
    return parse_taxonomies(yaml.safe_load(text))


def parse_taxonomies(doc: Any) -> Taxonomies:
    if not isinstance(doc, dict) or doc.get("schema") != "redline.taxonomies/1":
        raise CatalogError("taxonomies.yaml must be a mapping with schema redline.taxonomies/1")
    atlas, avid, lifecycle = doc.get("atlas"), doc.get("avid"), doc.get("lifecycle")
    if not all(isinstance(part, dict) for part in (atlas, avid, lifecycle)):
        raise CatalogError("taxonomies.yaml needs the mappings atlas, avid and lifecycle")
    tactics = _names(atlas.get("tactics"), ATLAS_TACTIC_ID, "atlas.tactics")
    techniques: dict[str, Technique] = {}
    for tid, entry in (atlas.get("techniques") or {}).items():
        if not isinstance(tid, str) or not ATLAS_ID.match(tid) or not isinstance(entry, dict):
            raise CatalogError(f"atlas.techniques has a malformed entry {tid!r}")
        parent = tid.split(".")[0] + "." + tid.split(".")[1]
        if parent != tid:
            if "tactics" in entry or parent not in techniques:
                raise CatalogError(f"atlas.techniques.{tid}: a sub-technique follows its parent and names no tactics")
            own_tactics = techniques[parent].tactics
        else:
            own_tactics = tuple(entry.get("tactics") or ())
            if not own_tactics or any(t not in tactics for t in own_tactics):
                raise CatalogError(f"atlas.techniques.{tid} must name tactics from atlas.tactics")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise CatalogError(f"atlas.techniques.{tid} needs a name")
        techniques[tid] = Technique(tid, name, own_tactics)
    sep = _names(avid.get("sep"), AVID_SEP_ID, "avid.sep")
    domains = avid.get("domains")
    if not isinstance(domains, dict) or set(domains) != {"S", "E", "P"}:
        raise CatalogError("avid.domains must name the S, E and P domains")
    labels = _names(avid.get("avid_labels"), AVID_SEP_ID, "avid.avid_labels")
    if set(labels) - set(sep):
        raise CatalogError("avid.avid_labels names a code that avid.sep does not list")
    stages = _names(avid.get("lifecycle"), AVID_LIFECYCLE_ID, "avid.lifecycle")
    mode_lifecycle: dict[str, tuple[str, ...]] = {}
    for code in MODE_CODES:
        codes = lifecycle.get(code)
        if not isinstance(codes, list) or not codes or any(c not in stages for c in codes):
            raise CatalogError(f"lifecycle.{code} must list lifecycle stages from avid.lifecycle")
        mode_lifecycle[code] = tuple(codes)
    if set(lifecycle) != set(MODE_CODES):
        raise CatalogError("lifecycle must map exactly the codes FM01..FM17")
    version = avid.get("taxonomy_version")
    if not isinstance(version, str):
        raise CatalogError("avid.taxonomy_version must be text")
    frozen = types.MappingProxyType
    return Taxonomies(frozen(tactics), frozen(techniques), version, frozen(dict(domains)), frozen(sep),
                      frozen(labels), frozen(stages), frozen(mode_lifecycle))


def _names(value: Any, pattern: re.Pattern[str], where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise CatalogError(f"taxonomies.yaml {where} must map ids to names")
    for key, name in value.items():
        if not isinstance(key, str) or not pattern.match(key) or not isinstance(name, str) or not name.strip():
            raise CatalogError(f"taxonomies.yaml {where} has a malformed entry {key!r}")
    return dict(value)


# --- from ids back to a mode ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModeMatch:
    """The mode a set of ATLAS/AVID ids points at, with the runners-up it was chosen over."""

    mode: str
    score: float
    candidates: tuple[str, ...]  # every mode that shares at least one id, best first

    @property
    def ambiguous(self) -> bool:
        return len(self.candidates) > 1


@functools.lru_cache(maxsize=1)
def _citing_modes() -> Mapping[str, tuple[str, ...]]:
    """id -> the modes that cite it (ATLAS techniques and AVID SEP codes together)."""
    citing: dict[str, list[str]] = {}
    for mode in load_modes():
        for ident in (*mode.atlas, *mode.avid):
            citing.setdefault(ident, []).append(mode.code)
    return types.MappingProxyType({k: tuple(v) for k, v in citing.items()})


def infer_mode(ids: Iterable[str]) -> ModeMatch | None:
    """The failure mode whose catalog ids best explain ``ids``; None if no mode cites any.

    An id counts in proportion to how specific it is: one only a single mode cites
    (``AML.T0024.000``) weighs 1, one three modes share (``AML.T0043``) weighs 1/3. Ties
    go to the mode that explains more of ``ids``, then to code order (the general mode
    before its special cases, e.g. FM01 before FM07), so the answer is deterministic.
    Lifecycle codes and unknown ids do not vote.
    """
    given = set(ids)
    citing = _citing_modes()
    scores: dict[str, float] = {}
    explained: dict[str, int] = {}
    for ident in given:
        for code in citing.get(ident, ()):
            scores[code] = scores.get(code, 0.0) + 1.0 / len(citing[ident])
            explained[code] = explained.get(code, 0) + 1
    if not scores:
        return None

    def rank(code: str) -> tuple[float, int, str]:
        return (-round(scores[code], 9), -explained[code], code)

    ordered = sorted(scores, key=rank)
    return ModeMatch(ordered[0], scores[ordered[0]], tuple(ordered))


def unknown_ids(modes: Iterable[Any], taxonomies: Taxonomies) -> list[str]:
    """``MODE: id`` for every ATLAS or AVID id a mode cites that ``taxonomies`` does not define.

    The catalog may only map modes to ids the exchange can name and map back; the test
    suite asserts this list is empty for the shipped data.
    """
    missing = []
    for mode in modes:
        missing += [f"{mode.code}: {t}" for t in mode.atlas if t not in taxonomies.atlas_techniques]
        missing += [f"{mode.code}: {c}" for c in mode.avid if c not in taxonomies.avid_sep]
        missing += [f"{mode.code}: {c}" for c in taxonomies.mode_lifecycle.get(mode.code, ())
                    if c not in taxonomies.avid_lifecycle]
    return missing
