import base64
import hashlib
import json
import os
import stat

import pytest

from redline.errors import UsageError
from redline.provenance import generate_keypair, sign_directory, verify_directory
from redline.provenance.dsse import pae


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kinds(result):
    return sorted((p.kind, p.path) for p in result.problems)


def test_pae_matches_the_dsse_specification():
    # The worked example of the DSSE protocol document.
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", b"") == b"DSSEv1 1 t 0 "


def test_signature_file_is_a_dsse_envelope_around_an_in_toto_statement(model_dir, keypair):
    key, pub, keyid = keypair
    result = sign_directory(model_dir, key)
    assert result.signature_path == model_dir / "model.sig" and result.files == 4 and result.keyid == keyid

    envelope = json.loads((model_dir / "model.sig").read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    resources = statement["predicate"]["resources"]
    names = [r["name"] for r in resources]
    assert names == sorted(names) == [".gitattributes", "config.json", "weights/layer0.bin", "weights/layer1.bin"]
    for r in resources:
        assert r["algorithm"] == "sha256" and r["digest"] == sha256(model_dir / r["name"])
    assert statement["predicate"]["serialization"]["ignore_paths"] == ["model.sig"]
    (subject,) = statement["subject"]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    assert subject == {"name": "tiny-model", "digest": {"sha256": root}}
    assert result.root_digest == root

    # The signature is Ed25519 over PAE(payloadType, payload), checked with cryptography directly.
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_public_key(pub.read_bytes())
    (sig,) = envelope["signatures"]
    assert sig["keyid"] == keyid
    message = (
        b"DSSEv1 %d application/vnd.in-toto+json %d " % (len("application/vnd.in-toto+json"), len(payload)) + payload
    )
    public.verify(base64.b64decode(sig["sig"]), message)  # raises if wrong


def test_untouched_folder_verifies_and_resigning_is_stable(model_dir, keypair):
    key, pub, keyid = keypair
    sign_directory(model_dir, key)
    result = verify_directory(model_dir, pub)
    assert result.ok and result.files == 4 and result.keyid == keyid and result.problems == []
    (model_dir / "empty-dir").mkdir()  # folders carry no content; only files are signed
    assert verify_directory(model_dir, pub).ok
    sign_directory(model_dir, key)  # the old model.sig is not signed into the new one
    assert verify_directory(model_dir, pub).files == 4


def test_changed_missing_and_extra_files_are_all_listed(model_dir, keypair):
    key, pub, _ = keypair
    sign_directory(model_dir, key)
    (model_dir / "weights" / "layer1.bin").write_bytes(b"\x00" * 999 + b"\x01")
    (model_dir / "config.json").unlink()
    (model_dir / "weights" / "extra.pkl").write_bytes(b"\x80\x04.")
    result = verify_directory(model_dir, pub)
    assert not result.ok
    assert kinds(result) == [
        ("changed", "weights/layer1.bin"),
        ("extra", "weights/extra.pkl"),
        ("missing", "config.json"),
    ]


def test_wrong_key_and_altered_envelope_fail_before_any_file_is_trusted(model_dir, keypair, tmp_path):
    key, pub, keyid = keypair
    sign_directory(model_dir, key)
    _, other_pub, other_id = generate_keypair(tmp_path / "other")
    wrong = verify_directory(model_dir, other_pub)
    assert kinds(wrong) == [("signature", str(model_dir / "model.sig"))]
    assert other_id in wrong.problems[0].detail and keyid in wrong.problems[0].detail
    assert wrong.files == 0

    # Swap in a manifest that matches a tampered file, keeping the old signature.
    (model_dir / "config.json").write_text("{}")
    envelope = json.loads((model_dir / "model.sig").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    for r in statement["predicate"]["resources"]:
        if r["name"] == "config.json":
            r["digest"] = sha256(model_dir / "config.json")
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (model_dir / "model.sig").write_text(json.dumps(envelope))
    altered = verify_directory(model_dir, pub)
    assert [p.kind for p in altered.problems] == ["signature"] and "altered" in altered.problems[0].detail


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"payloadType": "x"}',
        '{"payloadType": "application/vnd.in-toto+json", "payload": "%%%", "signatures": [{"sig": "AA=="}]}',
    ],
)
def test_garbage_signature_files_fail_verification(model_dir, keypair, content):
    (model_dir / "model.sig").write_text(content)
    result = verify_directory(model_dir, keypair[1])
    assert [p.kind for p in result.problems] == ["signature"]


@pytest.mark.parametrize(
    "bad_name, problem",
    [
        ("../outside.bin", "bad-name"),
        ("/etc/passwd", "bad-name"),
        ("weights\\layer0.bin", "bad-name"),
        ("weights/./layer0.bin", "bad-name"),
        ("weights//layer0.bin", "bad-name"),
        ("C:/model.bin", "bad-name"),
        ("config.json", "duplicate"),
    ],
)
def test_path_tricks_in_a_validly_signed_manifest_fail(
    model_dir, keypair, sign_statement, make_statement, bad_name, problem
):
    entries = [
        (n, sha256(model_dir / n))
        for n in (".gitattributes", "config.json", "weights/layer0.bin", "weights/layer1.bin")
    ]
    entries.append((bad_name, "ab" * 32))
    (model_dir / "model.sig").write_text(json.dumps(sign_statement(make_statement(entries))))
    result = verify_directory(model_dir, keypair[1])
    assert [p.kind for p in result.problems] == [problem]


def test_crafted_statement_with_inconsistent_subject_or_other_predicate_fails(
    model_dir, keypair, sign_statement, make_statement
):
    entries = [
        (n, sha256(model_dir / n))
        for n in (".gitattributes", "config.json", "weights/layer0.bin", "weights/layer1.bin")
    ]
    statement = make_statement(entries)
    statement["subject"][0]["digest"]["sha256"] = "00" * 32
    (model_dir / "model.sig").write_text(json.dumps(sign_statement(statement)))
    result = verify_directory(model_dir, keypair[1])
    assert [p.kind for p in result.problems] == ["signature"] and "subject digest" in result.problems[0].detail

    statement = make_statement(entries)
    statement["predicateType"] = "https://example.invalid/other"
    (model_dir / "model.sig").write_text(json.dumps(sign_statement(statement)))
    assert [p.kind for p in verify_directory(model_dir, keypair[1]).problems] == ["signature"]

    (model_dir / "model.sig").write_text(json.dumps(sign_statement(make_statement(entries))))
    assert verify_directory(model_dir, keypair[1]).ok  # the same statement, untouched, passes


def test_symlinks_are_refused_when_signing_and_fail_verification(model_dir, keypair, tmp_path):
    key, pub, _ = keypair
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    (model_dir / "weights" / "link.bin").symlink_to(outside)
    with pytest.raises(UsageError, match=r"symlink weights/link.bin.*cp -rL"):
        sign_directory(model_dir, key)
    (model_dir / "weights" / "link.bin").unlink()
    sign_directory(model_dir, key)

    (model_dir / "inside-link").symlink_to("config.json")  # even a link that stays inside
    (model_dir / "dir-link").symlink_to(tmp_path)  # a linked folder is neither followed nor hashed
    result = verify_directory(model_dir, pub)
    assert kinds(result) == [("symlink", "dir-link"), ("symlink", "inside-link")]


def test_a_file_replaced_by_a_symlink_is_reported_once(model_dir, keypair):
    key, pub, _ = keypair
    sign_directory(model_dir, key)
    (model_dir / "config.json").unlink()
    (model_dir / "config.json").symlink_to("/etc/hostname")
    assert kinds(verify_directory(model_dir, pub)) == [("symlink", "config.json")]


def test_names_a_manifest_could_not_carry_safely_are_refused(model_dir, keypair):
    key, pub, _ = keypair
    sign_directory(model_dir, key)
    odd = model_dir / "weights\\layer2.bin"  # a legal POSIX name, but a path trick elsewhere
    odd.write_bytes(b"1")
    with pytest.raises(UsageError, match="bad-name"):
        sign_directory(model_dir, key)
    assert [p.kind for p in verify_directory(model_dir, pub).problems] == ["bad-name"]
    odd.unlink()
    fd = os.open(os.path.join(os.fsencode(model_dir), b"latin1-\xe9.bin"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    with pytest.raises(UsageError, match="UTF-8"):
        sign_directory(model_dir, key)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_special_files_are_refused(model_dir, keypair):
    key, pub, _ = keypair
    sign_directory(model_dir, key)
    os.mkfifo(model_dir / "pipe")
    result = verify_directory(model_dir, pub)
    assert kinds(result) == [("special", "pipe")] and "FIFO" in result.problems[0].detail
    with pytest.raises(UsageError, match="special pipe"):
        sign_directory(model_dir, key)


def test_signature_elsewhere_with_out_and_sig(model_dir, keypair, tmp_path):
    key, pub, _ = keypair
    out = tmp_path / "tiny.sig"
    sign_directory(model_dir, key, out=out)
    assert not (model_dir / "model.sig").exists()
    assert verify_directory(model_dir, pub, signature=out).ok
    # a signature file kept inside the folder under another name is not part of the manifest
    inside = model_dir / "sigs"
    inside.mkdir()
    sign_directory(model_dir, key, out=inside / "v1.sig")
    assert verify_directory(model_dir, pub, signature=inside / "v1.sig").files == 4


def test_input_errors_are_usage_errors(model_dir, keypair, tmp_path):
    key, pub, _ = keypair
    with pytest.raises(UsageError, match="no such directory"):
        sign_directory(tmp_path / "absent", key)
    with pytest.raises(UsageError, match="not a directory"):
        sign_directory(key, key)
    with pytest.raises(UsageError, match="no such key file"):
        sign_directory(model_dir, tmp_path / "absent.key")
    with pytest.raises(UsageError, match="not a PEM private key"):
        sign_directory(model_dir, model_dir / "config.json")
    with pytest.raises(UsageError, match="no signature file"):
        verify_directory(model_dir, pub)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="no files to sign"):
        sign_directory(empty, key)


def test_non_ed25519_and_encrypted_keys(model_dir, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    ec_key = tmp_path / "ec.key"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(UsageError, match="not an Ed25519 private key"):
        sign_directory(model_dir, ec_key)

    locked = tmp_path / "locked.key"
    private = ed25519.Ed25519PrivateKey.generate()
    locked.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    monkeypatch.delenv("REDLINE_KEY_PASSWORD", raising=False)
    with pytest.raises(UsageError, match="REDLINE_KEY_PASSWORD"):
        sign_directory(model_dir, locked)
    monkeypatch.setenv("REDLINE_KEY_PASSWORD", "wrong")
    with pytest.raises(UsageError, match="wrong passphrase"):
        sign_directory(model_dir, locked)
    monkeypatch.setenv("REDLINE_KEY_PASSWORD", "s3cret")
    sign_directory(model_dir, locked)
    assert verify_directory(model_dir, locked).ok  # a private key PEM also serves to verify


def test_keygen_writes_a_private_key_only_the_owner_can_read(tmp_path):
    key, pub, keyid = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in key.read_bytes() and b"BEGIN PUBLIC KEY" in pub.read_bytes()
    assert len(keyid) == 64
    with pytest.raises(UsageError, match="already exists"):
        generate_keypair(tmp_path / "k")
    _, _, new_id = generate_keypair(tmp_path / "k", force=True)
    assert new_id != keyid


def test_signing_never_writes_through_a_symlink(model_dir, keypair, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (model_dir / "model.sig").symlink_to(victim)  # planted in a downloaded model folder
    with pytest.raises(UsageError, match="symlink model.sig"):
        sign_directory(model_dir, keypair[0])
    (model_dir / "model.sig").unlink()
    out = tmp_path / "release.sig"
    out.symlink_to(victim)
    sign_directory(model_dir, keypair[0], out=out)
    assert victim.read_text() == "precious"
    assert not out.is_symlink() and verify_directory(model_dir, keypair[1], signature=out).ok
