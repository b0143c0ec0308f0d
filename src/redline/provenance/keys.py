"""Ed25519 keys in PEM files: generate, load, and name them by a key id.

``cryptography`` is imported only here and only when a key is touched, so the CLI and
``import redline`` stay light and work without it for every other command.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError

# An encrypted private key is unlocked with the passphrase in this variable (never a flag,
# which would leak into shell history and the process list).
PASSWORD_ENV = "REDLINE_KEY_PASSWORD"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise UsageError("signing needs the 'cryptography' package: pip install 'redline[crypto]'") from None
    return serialization, ed25519


def key_id(public_key: Any) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo: stable, and the same for both halves of a pair."""
    serialization, _ = _crypto()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def generate_keypair(prefix: str | os.PathLike, *, force: bool = False) -> tuple[Path, Path, str]:
    """Write ``PREFIX.key`` (PKCS8, mode 0600) and ``PREFIX.pub`` (SubjectPublicKeyInfo); return both and the key id."""
    serialization, ed25519 = _crypto()
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (key_path, pub_path):
        if path.exists() and not force:
            raise UsageError(f"{path} already exists (pass --force to overwrite)")
        if not path.parent.is_dir():
            raise UsageError(f"{path.parent}: no such directory")
    private_key = ed25519.Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(key_path, private_pem, 0o600)
    _write_new(pub_path, public_pem, 0o644)
    return key_path, pub_path, key_id(private_key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode so the private key is never readable by others, not even briefly.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load_private_key(path: str | os.PathLike) -> Any:
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import UnsupportedAlgorithm

    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, None)
    except TypeError:  # the key is encrypted
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            raise UsageError(f"{path}: the private key is encrypted; put its passphrase in ${PASSWORD_ENV}") from None
        try:
            key = serialization.load_pem_private_key(data, password.encode())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise UsageError(f"{path}: wrong passphrase in ${PASSWORD_ENV}, or a damaged key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{path}: not a PEM private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{path}: not an Ed25519 private key (make one with `redline keygen`)")
    return key


def load_public_key(path: str | os.PathLike) -> Any:
    """An Ed25519 public key from a SubjectPublicKeyInfo PEM (a private key PEM also works)."""
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import UnsupportedAlgorithm

    data = _read_key_file(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"{path}: not a PEM public key") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"{path}: not an Ed25519 public key")
    return key


def _read_key_file(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such key file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the key ({exc.strerror or exc})") from None
