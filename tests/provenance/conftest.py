import base64
import hashlib
import json

import pytest

from redline.provenance import generate_keypair


@pytest.fixture
def model_dir(tmp_path):
    """A small model folder with a nested file, a binary blob and a dot-file."""
    root = tmp_path / "tiny-model"
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "mlp", "architectures": ["TinyMLP"]}')
    (root / "weights" / "layer0.bin").write_bytes(bytes(range(256)) * 40)
    (root / "weights" / "layer1.bin").write_bytes(b"\x00" * 1000)
    (root / ".gitattributes").write_text("*.bin filter=lfs\n")
    return root


@pytest.fixture
def keypair(tmp_path):
    key, pub, keyid = generate_keypair(tmp_path / "release")
    return key, pub, keyid


@pytest.fixture
def sign_statement(keypair):
    """Sign an arbitrary in-toto statement as a DSSE envelope, without redline's signing code."""
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(keypair[0].read_bytes(), None)

    def sign(statement, keyid="test"):
        payload = json.dumps(statement).encode()
        ptype = b"application/vnd.in-toto+json"
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
        return {
            "payloadType": ptype.decode(),
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": keyid, "sig": base64.b64encode(private.sign(pae)).decode()}],
        }

    return sign


def statement_for(entries, name="tiny-model"):
    """An in-toto statement listing ``entries`` [(name, hex digest)], with a consistent subject digest."""
    root = hashlib.sha256(b"".join(bytes.fromhex(d) for _, d in entries)).hexdigest()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": root}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False, "ignore_paths": []},
            "resources": [{"name": n, "algorithm": "sha256", "digest": d} for n, d in entries],
        },
    }


@pytest.fixture
def make_statement():
    return statement_for
