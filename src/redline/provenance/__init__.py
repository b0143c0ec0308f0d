"""Integrity and provenance of model folders (FM09): signatures and ML-BOMs.

- ``sign_directory`` / ``verify_directory``: an Ed25519-signed DSSE envelope around an
  in-toto statement that lists every file's SHA-256 (OpenSSF model-signing v1.0 predicate).
- ``build_bom`` / ``write_bom``: a CycloneDX 1.6 ML-BOM with each file's hash and scan verdict.
- ``generate_keypair``: PEM key files to sign with.

Names are loaded on first use so that listing the CLI commands stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_bom": "bom",
    "write_bom": "bom",
    "generate_keypair": "keys",
    "key_id": "keys",
    "load_private_key": "keys",
    "load_public_key": "keys",
    "Manifest": "manifest",
    "Problem": "manifest",
    "Resource": "manifest",
    "SignResult": "signing",
    "VerifyResult": "signing",
    "sign_directory": "signing",
    "verify_directory": "signing",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
