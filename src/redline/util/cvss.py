"""CVSS v3.x base scores computed from the vector string (FIRST CVSS v3.1 specification, section 7).

Advisories often carry only the vector, so the score is derived here rather than trusted
from elsewhere. v3.0 vectors use the same base equations; the v3.1 round-up is used for
both because it is the float-safe version of the same rounding rule.
"""

from __future__ import annotations

import math

_PREFIXES = ("CVSS:3.0", "CVSS:3.1")
_BASE_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")

_ATTACK_VECTOR = {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2}
_ATTACK_COMPLEXITY = {"L": 0.77, "H": 0.44}
# Privileges required weigh more when a successful attack changes scope.
_PRIVILEGES = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_USER_INTERACTION = {"N": 0.85, "R": 0.62}
_IMPACT = {"H": 0.56, "L": 0.22, "N": 0.0}
_ALLOWED = {
    "AV": _ATTACK_VECTOR,
    "AC": _ATTACK_COMPLEXITY,
    "PR": _PRIVILEGES["U"],
    "UI": _USER_INTERACTION,
    "S": {"U": None, "C": None},
    "C": _IMPACT,
    "I": _IMPACT,
    "A": _IMPACT,
}


def parse_vector(vector: str) -> dict[str, str]:
    """The base metrics of a ``CVSS:3.x/...`` vector; raises ValueError when it is not one."""
    parts = vector.strip().split("/")
    if parts[0] not in _PREFIXES:
        raise ValueError(f"not a CVSS v3 vector: {vector!r}")
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep or key in metrics:
            raise ValueError(f"malformed CVSS vector: {vector!r}")
        metrics[key] = value
    for key in _BASE_METRICS:
        if metrics.get(key) not in _ALLOWED[key]:
            raise ValueError(f"CVSS vector {vector!r} lacks a valid {key} metric")
    return {key: metrics[key] for key in _BASE_METRICS}


def roundup(value: float) -> float:
    """Smallest one-decimal number >= value, immune to float noise (CVSS v3.1 Appendix A)."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000.0
    return (math.floor(scaled / 10_000) + 1) / 10.0


def base_score(vector: str) -> float:
    """The CVSS v3.x base score (0.0 to 10.0) of ``vector``."""
    m = parse_vector(vector)
    changed = m["S"] == "C"
    iss = 1 - (1 - _IMPACT[m["C"]]) * (1 - _IMPACT[m["I"]]) * (1 - _IMPACT[m["A"]])
    if changed:
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    else:
        impact = 6.42 * iss
    exploitability = (
        8.22
        * _ATTACK_VECTOR[m["AV"]]
        * _ATTACK_COMPLEXITY[m["AC"]]
        * _PRIVILEGES[m["S"]][m["PR"]]
        * _USER_INTERACTION[m["UI"]]
    )
    if impact <= 0:
        return 0.0
    if changed:
        return roundup(min(1.08 * (impact + exploitability), 10.0))
    return roundup(min(impact + exploitability, 10.0))
