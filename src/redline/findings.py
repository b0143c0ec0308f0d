"""The finding record: what one check concluded about one target (report.json contract)."""
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
from typing import Any

from .severity import Severity


class Status(str, enum.Enum):
    VULNERABLE = "vulnerable"
    NOT_VULNERABLE = "not_vulnerable"
    # The check ran but its sample or budget could not decide; ``reason`` says what would.
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


def finding_id(check: str, target_spec: str, params: dict[str, Any], seed: int, budget: int | None,
               target_digest: str | None = None) -> str:
    """Stable id: the same check, target, parameters, seed and budget give the same id.

    ``target_spec`` is the spec as recorded (redacted); ``target_digest`` (:func:`target_digest`
    of the full spec) tells apart targets that are recorded alike."""
    blob = json.dumps(
        {"check": check, "target": target_spec, "params": params, "seed": seed, "budget": budget,
         # Only when set, so the ids of targets recorded as given stay what they were.
         **({"target_digest": target_digest} if target_digest else {})},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def target_digest(spec: Any) -> str | None:
    """A digest of a target spec that is recorded redacted (a URL's query values or user info,
    see :mod:`redline.util.urls`), else None. Two endpoints that differ only in a query value
    or a key are recorded alike; this digest, part of their identity (finding ids, campaign
    jobs, registry matching), keeps them apart without writing the secret anywhere."""
    from .util.urls import redact_url

    if not isinstance(spec, str) or redact_url(spec) == spec:
        return None
    return _slow_digest(spec)


@functools.lru_cache(maxsize=256)
def _slow_digest(spec: str) -> str:
    # Deliberately slow (PBKDF2, about 0.1 s): the digest is written into reports, and a weak
    # password in the URL must not be cheap to guess from it. Not keyed, so ids agree across
    # machines and registries.
    return "pbkdf2:" + hashlib.pbkdf2_hmac("sha256", spec.encode(), b"redline target digest", 200_000).hex()[:16]


@dataclasses.dataclass
class Finding:
    id: str
    mode: str
    check: str
    title: str
    status: Status
    severity: Severity = Severity.NONE
    rationale: str = ""
    # What to do about a vulnerable finding, from its measured numbers and the context.
    remediation: str = ""
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    # The attack budget the check ran with (part of the id; replay needs it).
    budget: int | None = None
    queries: int = 0
    evaluation_queries: int = 0
    seconds: float = 0.0
    # Why a check did not apply or what went wrong; empty for ordinary results.
    reason: str = ""
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        d["severity"] = self.severity.label
        d["seconds"] = round(float(self.seconds), 3)
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        kw["status"] = Status(kw["status"])
        kw["severity"] = Severity.parse(kw.get("severity"))
        return cls(**kw)


def _jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays and tuples into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            return None  # JSON has no NaN/Inf
        return obj
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj
