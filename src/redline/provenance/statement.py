"""The signed payload: an in-toto Statement v1 whose predicate follows OpenSSF model signing v1.0.

The subject names the model folder and carries one digest over all file digests; the
predicate lists every file as a resource descriptor and says how the manifest was made,
so a verifier can recompute it. Parsing keeps duplicate or unsafe names as they are: it is
the verifier's job to report them, not the parser's to hide them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .manifest import DIGEST_ALGORITHM, Manifest, Resource

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
SERIALIZATION = {"method": "files", "hash_type": DIGEST_ALGORITHM, "allow_symlinks": False}

_HEX64 = re.compile(r"[0-9a-f]{64}")


class StatementError(ValueError):
    """The payload is not a statement this verifier understands."""


def to_statement(manifest: Manifest) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.model_name, "digest": {DIGEST_ALGORITHM: manifest.root_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {**SERIALIZATION, "ignore_paths": list(manifest.ignore_paths)},
            "resources": [{"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in manifest.resources],
        },
    }


def encode(statement: dict[str, Any]) -> bytes:
    """Compact, key-sorted JSON: the exact bytes that get signed."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def from_payload(payload: bytes) -> Manifest:
    """The manifest a signed payload describes; raises StatementError when it is malformed."""
    try:
        statement = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatementError(f"payload is not JSON ({exc})") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise StatementError(f"payload is not an in-toto {STATEMENT_TYPE} statement")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise StatementError(f"unsupported predicateType {statement.get('predicateType')!r}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise StatementError("the statement must have exactly one subject")
    model_name = subjects[0].get("name")
    subject_digest = subjects[0].get("digest")
    expected_root = subject_digest.get(DIGEST_ALGORITHM) if isinstance(subject_digest, dict) else None
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise StatementError("the statement has no predicate")
    serialization = predicate.get("serialization")
    if not isinstance(serialization, dict):
        raise StatementError("the predicate does not say how the manifest was made")
    if serialization.get("method") != "files" or serialization.get("hash_type") != DIGEST_ALGORITHM:
        raise StatementError(f"unsupported serialization {serialization!r}")
    raw_resources = predicate.get("resources")
    if not isinstance(raw_resources, list):
        raise StatementError("the predicate has no resources list")
    resources = []
    for item in raw_resources:
        if not isinstance(item, dict):
            raise StatementError("a resource entry is not an object")
        algorithm, digest = item.get("algorithm"), item.get("digest")
        if algorithm != DIGEST_ALGORITHM or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise StatementError(f"resource {item.get('name')!r} has no valid sha256 digest")
        name = item.get("name")
        resources.append(Resource(name if isinstance(name, str) else repr(name), digest))
    ignore_paths = serialization.get("ignore_paths") or []
    if not isinstance(ignore_paths, list):
        raise StatementError("ignore_paths is not a list")
    manifest = Manifest(str(model_name), tuple(resources), tuple(str(p) for p in ignore_paths))
    if manifest.root_digest != expected_root:
        raise StatementError("the subject digest does not match the listed resources")
    return manifest
