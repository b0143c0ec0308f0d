"""Sign a model folder and verify it later (FM09, attacks on the ML supply chain).

``sign_directory`` hashes every file, wraps the manifest in an in-toto statement, signs it
in a DSSE envelope with Ed25519 and writes the envelope as JSON (``model.sig`` by default).
``verify_directory`` checks the signature first and trusts the manifest only after that,
then lists every difference between the manifest and the folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..util.atomic import atomic_write_text
from . import keys, statement
from .dsse import Envelope, EnvelopeError, Signature, pae
from .manifest import (
    SIGNATURE_NAME,
    Manifest,
    Problem,
    describe_folder,
    hash_files,
    model_folder,
    name_problem,
    relative_inside,
    scan_tree,
)


@dataclasses.dataclass(frozen=True)
class SignResult:
    signature_path: Path
    files: int
    keyid: str
    root_digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "signature": str(self.signature_path),
            "files": self.files,
            "keyid": self.keyid,
            "root_digest": self.root_digest,
        }


@dataclasses.dataclass
class VerifyResult:
    directory: Path
    signature_path: Path
    keyid: str
    files: int = 0  # files listed in the signed manifest (0 when the signature did not verify)
    model_name: str = ""
    root_digest: str = ""
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "directory": str(self.directory),
            "signature": str(self.signature_path),
            "keyid": self.keyid,
            "model": self.model_name,
            "root_digest": self.root_digest,
            "files": self.files,
            "problems": [p.to_dict() for p in self.problems],
        }


def default_signature_path(directory: Path) -> Path:
    return directory / SIGNATURE_NAME


def sign_directory(
    directory: str | os.PathLike, key: str | os.PathLike, *, out: str | os.PathLike | None = None
) -> SignResult:
    """Sign every file under ``directory`` with the Ed25519 private key in ``key`` (PEM)."""
    root = model_folder(directory)
    private_key = keys.load_private_key(key)
    out_path = Path(out) if out is not None else default_signature_path(root)
    if out_path.is_dir():
        raise UsageError(f"--out {out_path} is a directory; give a file name")
    if not out_path.parent.is_dir():
        raise UsageError(f"{out_path.parent}: no such directory for the signature")
    excluded = relative_inside(root, out_path)
    manifest = describe_folder(root, {excluded} if excluded else set(), purpose="sign")
    payload = statement.encode(statement.to_statement(manifest))
    keyid = keys.key_id(private_key.public_key())
    signature = private_key.sign(pae(statement.PAYLOAD_TYPE, payload))
    envelope = Envelope(statement.PAYLOAD_TYPE, payload, (Signature(keyid, signature),))
    # Replace rather than write through: a model.sig shipped as a symlink must not redirect the write.
    atomic_write_text(out_path, json.dumps(envelope.to_dict(), indent=2) + "\n")
    return SignResult(out_path, len(manifest.resources), keyid, manifest.root_digest)


def verify_directory(
    directory: str | os.PathLike, key: str | os.PathLike, *, signature: str | os.PathLike | None = None
) -> VerifyResult:
    """Check ``directory`` against its signature; ``result.problems`` lists everything that differs.

    Raises UsageError only for inputs the user must fix (no folder, no key, no signature
    file); anything wrong with the signature or the files is a problem in the result.
    """
    root = model_folder(directory)
    public_key = keys.load_public_key(key)
    sig_path = Path(signature) if signature is not None else default_signature_path(root)
    result = VerifyResult(root, sig_path, keys.key_id(public_key))
    try:
        raw = sig_path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{sig_path}: no signature file (sign the folder with `redline sign`)") from None
    except OSError as exc:
        raise UsageError(f"{sig_path}: cannot read the signature ({exc.strerror or exc})") from None

    manifest = _authenticated_manifest(raw, public_key, result)
    if manifest is None:
        return result
    result.files = len(manifest.resources)
    result.model_name = manifest.model_name
    result.root_digest = manifest.root_digest
    excluded = relative_inside(root, sig_path)
    result.problems.extend(compare(root, manifest, {excluded} if excluded else set()))
    return result


def _authenticated_manifest(raw: bytes, public_key: Any, result: VerifyResult) -> Manifest | None:
    """The signed manifest, or None (with the reason recorded) when it cannot be trusted."""
    from cryptography.exceptions import InvalidSignature

    def fail(detail: str) -> None:
        result.problems.append(Problem("signature", str(result.signature_path), detail))

    try:
        envelope = Envelope.from_dict(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError):
        fail("not a JSON signature envelope")
        return None
    except EnvelopeError as exc:
        fail(str(exc))
        return None
    if envelope.payload_type != statement.PAYLOAD_TYPE:
        fail(f"unexpected payloadType {envelope.payload_type!r}")
        return None
    message = pae(envelope.payload_type, envelope.payload)
    verified = False
    for sig in envelope.signatures:
        try:
            public_key.verify(sig.sig, message)
        except InvalidSignature:
            continue
        verified = True
        break
    if not verified:
        signers = sorted({s.keyid for s in envelope.signatures if s.keyid})
        if result.keyid in signers:
            fail(f"the signature by key {result.keyid} does not verify: the envelope was altered")
        else:
            named = ", ".join(signers) or "unknown"
            fail(f"not signed by key {result.keyid} (signed by key {named}), or the envelope was altered")
        return None
    try:
        return statement.from_payload(envelope.payload)
    except statement.StatementError as exc:
        fail(f"signed payload is malformed: {exc}")
        return None


def compare(root: Path, manifest: Manifest, exclude: set[str]) -> list[Problem]:
    """Every way ``root`` differs from ``manifest``: bad or repeated names, and changed, missing, extra or refused files."""
    problems: list[Problem] = []
    expected: dict[str, str] = {}
    for resource in manifest.resources:
        why = name_problem(resource.name)
        if why:
            problems.append(Problem("bad-name", ascii(resource.name)[1:-1], f"manifest entry {why}"))
        elif resource.name in expected:
            problems.append(Problem("duplicate", resource.name, "listed more than once in the manifest"))
        else:
            expected[resource.name] = resource.digest

    scan = scan_tree(root, exclude)
    problems.extend(scan.problems)
    refused = {p.path for p in scan.problems}
    actual_resources, unreadable = hash_files(root, scan.files)
    problems.extend(unreadable)
    actual = {r.name: r.digest for r in actual_resources}
    refused |= {p.path for p in unreadable}

    for name, digest in expected.items():
        if name in actual:
            if actual[name] != digest:
                problems.append(Problem("changed", name, f"sha256 {actual[name][:16]}..., signed {digest[:16]}..."))
        elif name not in refused:
            problems.append(Problem("missing", name, "signed but not in the folder"))
    for name in actual:
        if name not in expected:
            problems.append(Problem("extra", name, "in the folder but not signed"))
    return problems
