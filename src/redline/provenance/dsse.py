"""DSSE (Dead Simple Signing Envelope) v1: the pre-authentication encoding and the JSON envelope.

The signature covers ``PAE(payloadType, payload)``, never the JSON around it, so a verifier
must authenticate the bytes it is about to parse and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

PAE_PREFIX = b"DSSEv1"


class EnvelopeError(ValueError):
    """The envelope is not well-formed DSSE JSON."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths as ASCII decimal byte counts."""
    type_bytes = payload_type.encode("utf-8")
    return b" ".join([PAE_PREFIX, str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload])


@dataclasses.dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclasses.dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")} for s in self.signatures],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        if not isinstance(data, dict):
            raise EnvelopeError("the signature file is not a JSON object")
        payload_type = data.get("payloadType")
        if not isinstance(payload_type, str):
            raise EnvelopeError("payloadType is missing")
        payload = _b64decode(data.get("payload"), "payload")
        raw_signatures = data.get("signatures")
        if not isinstance(raw_signatures, list) or not raw_signatures:
            raise EnvelopeError("the envelope carries no signatures")
        signatures = []
        for item in raw_signatures:
            if not isinstance(item, dict):
                raise EnvelopeError("a signature entry is not an object")
            keyid = item.get("keyid", "")
            signatures.append(Signature(keyid if isinstance(keyid, str) else "", _b64decode(item.get("sig"), "sig")))
        return cls(payload_type, payload, tuple(signatures))


def _b64decode(value: Any, field: str) -> bytes:
    """Standard or URL-safe base64, padded or not: DSSE asks verifiers to accept both."""
    if not isinstance(value, str) or not value:
        raise EnvelopeError(f"{field} is missing")
    padded = value + "=" * (-len(value) % 4)
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise EnvelopeError(f"{field} is not valid base64") from None
