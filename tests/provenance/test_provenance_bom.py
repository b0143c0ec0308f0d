import dataclasses
import json
import re

import pytest

from redline import __version__
from redline.errors import UsageError
from redline.provenance import build_bom, sign_directory, write_bom


@dataclasses.dataclass
class FakeIssue:
    severity: str
    kind: str
    detail: str


@dataclasses.dataclass
class FakeReport:
    path: str
    format: str
    verdict: str
    issues: list


def fake_scanner(path):
    """Stands in for redline.filescan.scan_path: a verdict chosen by file name."""
    if path.endswith("evil.pkl"):
        return FakeReport(
            path,
            "pickle",
            "unsafe",
            [FakeIssue("Critical", "global", "os.system"), FakeIssue("High", "reduce", "call")],
        )
    if path.endswith("crash.bin"):
        raise RuntimeError("scanner bug")
    fmt = "json" if path.endswith(".json") else "unknown"
    return FakeReport(path, fmt, "safe", [])


def props(component):
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def test_bom_structure(model_dir):
    (model_dir / "evil.pkl").write_bytes(b"\x80\x04.")
    bom = build_bom(model_dir, scanner=fake_scanner)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6" and bom["version"] == 1
    assert re.fullmatch(
        r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", bom["serialNumber"]
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", bom["metadata"]["timestamp"])
    (tool,) = bom["metadata"]["tools"]["components"]
    assert tool == {"type": "application", "name": "redline", "version": __version__}

    model, *files = bom["components"]
    assert model["type"] == "machine-learning-model" and model["name"] == "tiny-model"
    assert [f["name"] for f in files] == [
        ".gitattributes",
        "config.json",
        "evil.pkl",
        "weights/layer0.bin",
        "weights/layer1.bin",
    ]
    refs = [c["bom-ref"] for c in bom["components"]]
    assert len(refs) == len(set(refs))
    assert bom["dependencies"] == [{"ref": model["bom-ref"], "dependsOn": refs[1:]}]
    for f in files:
        assert f["type"] == "file"
        (h,) = f["hashes"]
        assert h["alg"] == "SHA-256" and re.fullmatch(r"[0-9a-f]{64}", h["content"])
        assert set(props(f)) >= {"redline:format", "redline:scan:verdict", "redline:scan:issues"}
        assert all(isinstance(v, str) for v in props(f).values())  # CycloneDX property values are strings

    evil = next(f for f in files if f["name"] == "evil.pkl")
    assert props(evil) == {"redline:format": "pickle", "redline:scan:verdict": "unsafe", "redline:scan:issues": "2"}
    assert props(model)["redline:scan:verdict"] == "unsafe"
    assert props(model)["redline:scan:issues"] == "2"
    assert props(model)["redline:format"] == "json,pickle"
    json.dumps(bom)  # plain JSON types only


def test_model_hash_equals_the_signature_subject_digest(model_dir, keypair):
    result = sign_directory(model_dir, keypair[0])  # model.sig now lies in the folder
    bom = build_bom(model_dir, scan=False)
    assert bom["components"][0]["hashes"] == [{"alg": "SHA-256", "content": result.root_digest}]
    assert "model.sig" not in [c["name"] for c in bom["components"]]


def test_scanner_crash_becomes_an_error_verdict(model_dir):
    (model_dir / "crash.bin").write_bytes(b"x")
    files = build_bom(model_dir, scanner=fake_scanner)["components"][1:]
    crash = props(next(f for f in files if f["name"] == "crash.bin"))
    assert crash["redline:scan:verdict"] == "error" and "scanner bug" in crash["redline:scan:error"]


def test_no_scan_hashes_only(model_dir):
    bom = build_bom(model_dir, scan=False)
    assert all("properties" not in f for f in bom["components"][1:])
    assert list(props(bom["components"][0])) == ["redline:hash:method"]


def test_model_card_holds_only_what_the_folder_states(model_dir):
    bom = build_bom(model_dir, scan=False)
    assert bom["components"][0]["modelCard"] == {
        "modelParameters": {"architectureFamily": "mlp", "modelArchitecture": "TinyMLP"}
    }
    (model_dir / "README.md").write_text("---\npipeline_tag: image-classification\ndatasets:\n  - mnist\n---\n# Tiny\n")
    params = build_bom(model_dir, scan=False)["components"][0]["modelCard"]["modelParameters"]
    assert params["task"] == "image-classification"
    assert params["datasets"] == [{"type": "dataset", "name": "mnist"}]

    (model_dir / "config.json").write_text('{"model_type": ["not", "a", "string"]}')
    (model_dir / "README.md").write_text("# no front matter\n")
    assert "modelCard" not in build_bom(model_dir, scan=False)["components"][0]


def test_write_bom_leaves_its_own_output_out(model_dir):
    out = model_dir / "bom.cdx.json"
    bom = write_bom(model_dir, out, scan=False)
    assert json.loads(out.read_text()) == bom
    second = write_bom(model_dir, out, scan=False)  # now the file exists inside the folder
    assert [c["name"] for c in second["components"]] == [c["name"] for c in bom["components"]]


def test_symlinks_and_missing_folders_are_refused(model_dir, tmp_path):
    (model_dir / "link").symlink_to(tmp_path)
    with pytest.raises(UsageError, match="symlink link"):
        build_bom(model_dir, scan=False)
    with pytest.raises(UsageError, match="no such directory"):
        build_bom(tmp_path / "absent", scan=False)


def test_with_the_real_scanner(model_dir):
    import pickle

    (model_dir / "evil.pkl").write_bytes(b"cos\nsystem\n(S'echo owned'\ntR.")
    (model_dir / "ok.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    files = {f["name"]: props(f) for f in build_bom(model_dir)["components"][1:]}
    assert files["evil.pkl"]["redline:scan:verdict"] == "unsafe"
    assert int(files["evil.pkl"]["redline:scan:issues"]) >= 1
    assert files["ok.pkl"]["redline:scan:verdict"] == "safe"


def test_bom_validates_against_the_cyclonedx_1_6_schema(model_dir):
    """Runs where cyclonedx-python-lib[json-validation] is installed (it ships the official schema)."""
    pytest.importorskip("cyclonedx.validation.json")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    (model_dir / "README.md").write_text("---\npipeline_tag: tabular-classification\ndatasets: [digits]\n---\n")
    (model_dir / "evil.pkl").write_bytes(b"\x80\x04.")
    (model_dir / "crash.bin").write_bytes(b"x")
    bom = build_bom(model_dir, scanner=fake_scanner)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    bom["components"][1]["properties"][0]["value"] = 3  # the validator does catch mistakes
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None
