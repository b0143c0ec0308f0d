"""Export of failure cases as AVID reports, ATLAS case studies, case JSON and Markdown, and import back."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redline.catalog import load_modes
from redline.errors import DataError, UsageError
from redline.registry import CaseStatus, FailureCase
from redline.registry.exchange import (
    export_case,
    import_file,
    validate_atlas,
    validate_avid,
)
from redline.registry.exchange.atlas import EVIDENCE_KEY

DATA = Path(__file__).parent / "data"
# avidtools pins its own pydantic, so it lives in a venv of its own: .ci/run makes one and
# names its python in REDLINE_AVID_PYTHON (never a runtime dependency of redline).
AVID_VENV_PYTHON = Path(os.environ.get("REDLINE_AVID_PYTHON", "/work/venvs/avid/bin/python"))
EXTENSIONS = {"avid": "json", "atlas": "yaml", "json": "json"}


def _case(mode: str = "FM01", **changes) -> FailureCase:
    fields = {
        "title": "PGD flips a digit classifier's answers", "mode": mode, "severity": "Important",
        "rationale": "Most inputs flip within a small L-inf ball.", "summary": "White-box PGD succeeds on 93% of inputs.",
        "remediation": "Train adversarially.", "system": "digit reader", "model": "digits_mlp", "version": "2",
        "target": "zoo:digits_mlp", "data": "builtin:digits", "finding_id": "f00d", "check": f"{mode}.probe",
        "params": {"epsilon": 0.1, "steps": 20}, "seed": 3, "budget": 800, "metrics": {"success_rate": 0.93},
        "artifacts": {"examples.npz": "ab" * 32},
        "references": ["https://arxiv.org/abs/1706.06083", "Madry et al. <https://arxiv.org/abs/1706.06083>", "a printed book"],
        "tags": ["demo"], "added_by": "alice", "created_at": "2099-01-02T03:04:05+00:00",
    }
    fields.update(changes)
    return FailureCase(**fields)


def _roundtrip(case: FailureCase, fmt: str, tmp_path: Path) -> tuple[str, FailureCase, str]:
    first = export_case(case, fmt)
    path = tmp_path / f"case.{EXTENSIONS[fmt]}"
    path.write_text(first, encoding="utf-8")
    [back] = import_file(path)
    return first, back, export_case(back, fmt)


@pytest.mark.parametrize("fmt", ["avid", "atlas", "json"])
def test_export_import_export_is_stable(fmt, tmp_path):
    first, back, second = _roundtrip(_case(), fmt, tmp_path)
    assert second == first
    for field in ("title", "mode", "severity", "rationale", "check", "params", "seed", "budget", "metrics",
                  "artifacts", "references", "model", "target", "finding_id"):
        assert getattr(back, field) == getattr(_case(), field), field


@pytest.mark.parametrize("mode", [m.code for m in load_modes()])
def test_every_mode_round_trips_through_avid(mode, tmp_path):
    case = _case(mode, check="", references=[], tags=[], created_at="")
    first, back, second = _roundtrip(case, "avid", tmp_path)
    assert second == first and back.mode == mode and back.source == "avid"
    report = json.loads(first)
    sep = [label.split(":")[0] for label in report["impact"]["avid"]["sep_view"]]
    assert sep == list(next(m for m in load_modes() if m.code == mode).avid)


@pytest.mark.parametrize("mode", [m.code for m in load_modes()])
def test_atlas_export_for_every_mode_with_a_technique(mode, tmp_path):
    adversarial = bool(next(m for m in load_modes() if m.code == mode).atlas)
    if not adversarial:
        with pytest.raises(UsageError, match="no MITRE ATLAS technique"):
            export_case(_case(mode), "atlas")
        return
    first, back, second = _roundtrip(_case(mode), "atlas", tmp_path)
    assert second == first and back.mode == mode and back.source == "atlas"


def test_avid_export_fields(tmp_path):
    report = json.loads(export_case(_case("FM04", atlas=["AML.T0024.000"]), "avid"))
    validate_avid(report)
    assert report["data_type"] == "AVID"
    assert report["problemtype"] == {"classof": "Undefined", "type": "Detection",
                                     "description": {"lang": "eng", "value": "PGD flips a digit classifier's answers"}}
    assert report["impact"]["avid"]["sep_view"] == ["S0301: Information Leak", "S0500: Exfiltration", "P0300: Privacy"]
    assert report["impact"]["avid"]["risk_domain"] == ["Security", "Performance"]
    assert report["impact"]["avid"]["lifecycle_view"] == ["L04: Model Development", "L06: Deployment"]
    assert {"type": "atlas", "label": "MITRE ATLAS AML.T0024.000: Exfiltration via ML Inference API: Infer Training "
            "Data Membership", "url": "https://atlas.mitre.org/techniques/AML.T0024.000"} in report["references"]
    assert all(ref["url"].startswith("https://") for ref in report["references"])  # the book has no URL
    assert {"type": "Model", "name": "digits_mlp"} in report["affects"]["artifacts"]
    [metric] = report["metrics"]
    assert metric["detection_method"]["name"] == "redline FM04.probe"
    assert metric["results"]["severity"] == "Important" and metric["results"]["metrics"] == {"success_rate": 0.93}
    assert report["reported_date"] == "2099-01-02" and report["credit"] == [{"lang": "eng", "value": "alice"}]


def test_atlas_export_fields():
    study = yaml.safe_load(export_case(_case("FM05", atlas=[]), "atlas"))
    validate_atlas(study)
    assert study["object-type"] == "case-study" and study["id"].startswith("REDLINE-")
    assert study["case-study-type"] == "exercise" and study["incident-date"] == "2099-01-02"
    steps = [(s["tactic"], s["technique"]) for s in study["procedure"]]
    # FM05 cites AML.T0024, AML.T0024.002 and AML.T0005: the parent gives way to its sub-technique,
    # and the steps follow the tactics' order (staging before exfiltration)
    assert steps == [("AML.TA0001", "AML.T0005"), ("AML.TA0010", "AML.T0024.002")]
    assert study["x-redline"]["mode"] == "FM05"
    assert {"title": "a printed book", "url": None} in study["references"]


def test_an_export_that_breaks_its_schema_is_refused():
    with pytest.raises(DataError, match="redline block.*severity"):
        export_case(_case(severity="Catastrophic"), "avid")
    with pytest.raises(DataError, match="AVID code"):
        export_case(_case(avid=["S0999"]), "avid")
    with pytest.raises(UsageError, match="unknown export format"):
        export_case(_case(), "pdf")
    with pytest.raises(UsageError, match="unknown failure mode"):
        export_case(_case(mode="FM99"), "md")


def test_markdown_page_is_readable_and_escapes_hostile_text():
    page = export_case(_case(title="<script>alert(1)</script> [click](http://evil)",
                             references=["x <javascript:alert(1)>", "https://example.org/a_b"]), "md")
    assert "<script>" not in page and "[click](http://evil)" not in page and "\\[click\\]" in page
    assert "<javascript:" not in page  # shown as text, never an autolink
    assert "FM01 Perturbation attack" in page and "Important" in page
    assert "redline scan zoo:digits_mlp --data builtin:digits --select FM01.probe --seed 3 --budget 800" in page
    assert "AML.T0043" in page and "S0403" in page and "<https://example.org/a_b>" in page


def test_json_export_is_the_case_record(tmp_path):
    case = _case(status=CaseStatus.FIXED, evidence={"plots": ["a.png"]}, id="c1")
    doc = json.loads(export_case(case, "json"))
    assert doc == case.to_dict()
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    assert import_file(path) == [case]


def test_example_avid_report_imports_with_inferred_mode(tmp_path):
    [case] = import_file(DATA / "avid_membership_clinic.json")
    assert case.mode == "FM04" and case.source == "avid"
    assert "mode-inferred:FM04" in case.tags and any(t.startswith("mode-candidates:FM04,") for t in case.tags)
    assert case.model == "readmission-risk-gbm" and case.system == "discharge planning assistant"
    assert case.avid == ["AVID-2099-R9001", "S0301", "P0300", "L04", "L06"] and case.atlas == ["AML.T0024.000"]
    assert "developer:Example Health Analytics" in case.tags and "avid-type:Measurement" in case.tags
    assert case.metrics["loss-threshold membership test"] == {"auc": 0.71, "queries": 4000}
    # imported once, the case is then stable: its export reads back to the same export
    first = export_case(case, "avid")
    report = json.loads(first)
    assert report["metadata"] == {"report_id": "AVID-2099-R9001"} and report["problemtype"]["type"] == "Measurement"
    assert report["affects"]["developer"] == ["Example Health Analytics"]
    original = json.loads((DATA / "avid_membership_clinic.json").read_text())
    assert sorted(map(str, report["affects"]["artifacts"])) == sorted(map(str, original["affects"]["artifacts"]))
    path = tmp_path / "again.json"
    path.write_text(first)
    assert export_case(import_file(path)[0], "avid") == first


def test_example_atlas_study_imports_with_its_own_procedure(tmp_path):
    [case] = import_file(DATA / "atlas_price_model_clone.yaml")
    assert case.mode == "FM05" and case.source == "atlas" and case.created_at == "2099-05-02"
    assert case.atlas == ["AML.T0040", "AML.T0024.002", "AML.T0005"]
    assert case.system == "quote pricing service" and case.added_by == "Example Retail security team"
    assert "atlas-actor:competing retailer" in case.tags and "atlas-type:incident" in case.tags
    study = yaml.safe_load(export_case(case, "atlas"))
    original = yaml.safe_load((DATA / "atlas_price_model_clone.yaml").read_text())
    assert study["procedure"] == original["procedure"] == case.evidence[EVIDENCE_KEY]
    assert study["actor"] == "competing retailer" and study["case-study-type"] == "incident"
    path = tmp_path / "again.yaml"
    path.write_text(export_case(case, "atlas"))
    assert export_case(import_file(path)[0], "atlas") == export_case(case, "atlas")


def test_ambiguous_avid_codes_pick_the_general_mode_and_say_so():
    [case] = import_file(DATA / "avid_adversarial_sign.json")
    assert case.mode == "FM01"
    assert "mode-inferred:FM01" in case.tags and "mode-candidates:FM01,FM07,FM06" in case.tags


def test_an_atlas_study_id_becomes_its_reference_and_survives_export(tmp_path):
    doc = yaml.safe_load((DATA / "atlas_price_model_clone.yaml").read_text())
    doc["id"] = "AML.CS0099"
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    [case] = import_file(path)
    assert case.references[0].endswith("<https://atlas.mitre.org/studies/AML.CS0099>")
    assert yaml.safe_load(export_case(case, "atlas"))["id"] == "AML.CS0099"
    assert json.loads(export_case(case, "avid"))["problemtype"]["classof"] == "ATLAS Case Study"


def test_a_file_of_several_documents_gives_several_cases(tmp_path):
    reports = [json.loads(export_case(_case(m), "avid")) for m in ("FM01", "FM02")]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(reports))
    assert [c.mode for c in import_file(path)] == ["FM01", "FM02"]
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text(yaml.safe_dump({"case-studies": [yaml.safe_load(export_case(_case("FM10"), "atlas"))]}))
    assert [c.mode for c in import_file(bundle)] == ["FM10"]


@pytest.mark.skipif(not AVID_VENV_PYTHON.exists(), reason="no avidtools venv (REDLINE_AVID_PYTHON; .ci/run makes one)")
def test_avid_exports_parse_with_avidtools(tmp_path):
    """Test-only comparison with the AVID project's own pydantic models (never a runtime dependency)."""
    paths = []
    for mode in load_modes():
        path = tmp_path / f"{mode.code}.json"
        path.write_text(export_case(_case(mode.code, avid=["AVID-2099-R0001", "AVID-2099-V0002"]), "avid"))
        paths.append(str(path))
    shutil.copy(DATA / "avid_membership_clinic.json", tmp_path / "example1.json")
    shutil.copy(DATA / "avid_adversarial_sign.json", tmp_path / "example2.json")
    paths += [str(tmp_path / "example1.json"), str(tmp_path / "example2.json")]
    script = (
        "import json, sys\n"
        "from avidtools.datamodels.report import Report\n"
        "for p in sys.argv[1:]:\n"
        "    raw = json.load(open(p))\n"
        "    r = Report.parse_obj(raw)\n"
        "    back = json.loads(r.json(exclude_none=True))\n"
        "    # avidtools always drops a reference's type and the vuln_id on output\n"
        "    for ref in raw.get('references') or []: ref.pop('type', None)\n"
        "    raw.get('impact', {}).get('avid', {}).pop('vuln_id', None)\n"
        "    assert back == raw, (p, back, raw)\n"
        "print(len(sys.argv) - 1)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(AVID_VENV_PYTHON), "-c", script, *paths], check=False, capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(len(paths))


def test_numpy_values_and_nan_export_as_plain_json():
    np = pytest.importorskip("numpy")
    case = _case(seed=np.int64(4), metrics={"auc": np.float32(0.5), "gap": float("nan"), "ci": np.array([0.1, 0.2])})
    report = json.loads(export_case(case, "avid"))
    assert report["metrics"][0]["results"]["seed"] == 4
    assert report["metrics"][0]["results"]["metrics"] == {"auc": 0.5, "gap": None, "ci": [0.1, 0.2]}
    assert "NaN" not in export_case(case, "json") and "nan" not in export_case(case, "atlas")


def test_a_case_without_a_title_is_not_exported():
    with pytest.raises(DataError, match="title"):
        export_case(_case(title="  "), "avid")


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)
_titles = _text.filter(lambda t: t.strip())
_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False), _text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=_titles, summary=_text, rationale=_text, system=_text, version=_text,
       params=st.dictionaries(st.text(min_size=1, max_size=8), _values, max_size=4),
       tags=st.lists(_text, max_size=3), seed=st.one_of(st.none(), st.integers(0, 2**31)),
       mode=st.sampled_from(["FM01", "FM04", "FM09", "FM15"]))
def test_round_trip_is_stable_for_arbitrary_text(tmp_path, title, summary, rationale, system, version, params,
                                                 tags, seed, mode):
    case = _case(mode, title=title, summary=summary, rationale=rationale, system=system, version=version,
                 params=params, tags=tags, seed=seed)
    for fmt in ("avid", "atlas", "json"):
        first, back, second = _roundtrip(case, fmt, tmp_path)
        assert second == first, fmt
        assert (back.title, back.params, back.seed, back.version) == (title, params, seed, version)


def test_yaml_export_keeps_letters_readable_and_line_break_lookalikes_exact(tmp_path):
    readable = export_case(_case("FM01", title="Échec du modèle 模型"), "atlas")
    assert "Échec du modèle 模型" in readable
    for odd in ("\x85", "\u2028", "a\u2029b"):  # PyYAML writes these raw and reads them as breaks
        first, back, second = _roundtrip(_case("FM01", version=odd, summary=odd), "atlas", tmp_path)
        assert second == first and back.version == odd and back.summary == odd
