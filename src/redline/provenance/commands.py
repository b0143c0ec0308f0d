"""``redline keygen``, ``redline sign``, ``redline verify`` and ``redline bom``.

Only argparse is imported here; the modules that hash files and touch ``cryptography`` are
imported by the handlers, so listing the commands stays cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..util.safe_text import echo  # file names and signatures come from folders redline does not own

EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    keygen = subparsers.add_parser(
        "keygen",
        help="make an Ed25519 key pair for signing model folders",
        description="Write PREFIX.key (private, PKCS8 PEM, mode 0600) and PREFIX.pub (public, PEM).",
        epilog="Example: redline keygen --out release\n  -> release.key (keep secret) and release.pub (publish)",
        formatter_class=fmt,
    )
    keygen.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the two key files")
    keygen.add_argument("--force", action="store_true", help="overwrite existing key files")
    keygen.set_defaults(handler=run_keygen)

    sign = subparsers.add_parser(
        "sign",
        help="sign every file of a model folder (FM09 supply chain)",
        description=(
            "Hash every file under DIR (SHA-256), put the list in an in-toto statement and sign it\n"
            "with Ed25519 in a DSSE envelope, written to DIR/model.sig. Symlinks and special files\n"
            "are refused."
        ),
        epilog="Example: redline sign models/mnist --key release.key",
        formatter_class=fmt,
    )
    sign.add_argument("directory", metavar="DIR", help="the model folder")
    sign.add_argument("--key", required=True, metavar="KEY", help="Ed25519 private key (PEM)")
    sign.add_argument("--out", metavar="FILE", help="where to write the signature (default: DIR/model.sig)")
    sign.add_argument("--json", action="store_true", help="print the result as JSON")
    sign.set_defaults(handler=run_sign)

    verify = subparsers.add_parser(
        "verify",
        help="check a model folder against its signature",
        description=(
            "Verify the signature with the public key, then compare every file with the signed\n"
            "manifest. Fails (exit 1) on a changed, missing or extra file, a bad signature, a\n"
            "wrong key, unsafe manifest paths, and any symlink or special file in DIR."
        ),
        epilog="Example: redline verify models/mnist --key release.pub",
        formatter_class=fmt,
    )
    verify.add_argument("directory", metavar="DIR", help="the model folder")
    verify.add_argument("--key", required=True, metavar="PUB", help="Ed25519 public key (PEM)")
    verify.add_argument("--sig", metavar="FILE", help="the signature to check (default: DIR/model.sig)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=run_verify)

    bom = subparsers.add_parser(
        "bom",
        help="write a CycloneDX 1.6 ML-BOM of a model folder",
        description=(
            "Describe DIR as a CycloneDX 1.6 ML-BOM: the model (hash over all files), one file\n"
            "component per file with its SHA-256, format and static-scan verdict (FM09)."
        ),
        epilog="Example: redline bom models/mnist --out mnist.cdx.json",
        formatter_class=fmt,
    )
    bom.add_argument("directory", metavar="DIR", help="the model folder")
    bom.add_argument("--out", metavar="FILE", help="write the BOM here (default: print it)")
    bom.add_argument("--no-scan", action="store_true", help="hash only; skip the static scan of each file")
    bom.set_defaults(handler=run_bom)


def run_keygen(args: argparse.Namespace) -> int:
    from .keys import generate_keypair

    key_path, pub_path, keyid = generate_keypair(args.out, force=args.force)
    echo(f"wrote {key_path} (private, keep it secret) and {pub_path} (public); key id {keyid}")
    return EXIT_OK


def run_sign(args: argparse.Namespace) -> int:
    from .signing import sign_directory

    result = sign_directory(args.directory, args.key, out=args.out)
    if args.json:
        echo(json.dumps(result.to_dict(), indent=2))
    else:
        echo(f"signed {result.files} files in {args.directory} with key {result.keyid} -> {result.signature_path}")
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    from .signing import verify_directory

    result = verify_directory(args.directory, args.key, signature=args.sig)
    if args.json:
        echo(json.dumps(result.to_dict(), indent=2))
    elif result.ok:
        echo(f"OK: {result.files} files in {args.directory} match the signature by key {result.keyid}")
    else:
        count = len(result.problems)
        echo(f"FAILED: {args.directory} does not match {result.signature_path} ({count} problem{'s' * (count != 1)})")
        for problem in result.problems:
            echo(f"  {problem}")
    return EXIT_OK if result.ok else EXIT_FAILED


def run_bom(args: argparse.Namespace) -> int:
    from .bom import build_bom, write_bom

    if args.out:
        bom = write_bom(args.directory, args.out, scan=not args.no_scan)
        files = len(bom["components"]) - 1
        echo(f"wrote a CycloneDX {bom['specVersion']} ML-BOM of {files} files to {args.out}")
    else:
        bom = build_bom(args.directory, scan=not args.no_scan)
        echo(json.dumps(bom, indent=2))
    unsafe = [
        c["name"]
        for c in bom["components"][1:]
        if {"name": "redline:scan:verdict", "value": "unsafe"} in c.get("properties", [])
    ]
    if unsafe:
        echo(f"note: the static scan marks {len(unsafe)} file(s) unsafe: {', '.join(unsafe)}", file=sys.stderr)
    return EXIT_OK
