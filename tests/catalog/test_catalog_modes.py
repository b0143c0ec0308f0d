"""The catalog loads strictly and says what the taxonomy and the bug bar say."""
from __future__ import annotations

import copy
import doctest
from importlib import resources

import pytest
import yaml

from redline import catalog
from redline.catalog import (
    MODE_CODES,
    CatalogError,
    get_mode,
    load_modes,
    mode_to_dict,
    parse_modes,
)
from redline.errors import UsageError
from redline.severity import Severity

C, I, M, L = Severity.CRITICAL, Severity.IMPORTANT, Severity.MODERATE, Severity.LOW

# The bug bar's own ratings, and the ranges chosen where it gives none.
EXPECTED_RANGES = {
    "FM01": (I, C), "FM02": (I, C), "FM03": (C, C), "FM04": (M, C), "FM05": (I, C),
    "FM06": (I, C), "FM07": (C, C), "FM08": (C, C), "FM09": (C, C),
    "FM10": (I, C), "FM11": (L, C),
    "FM12": (L, C), "FM13": (L, C), "FM14": (L, C), "FM15": (L, C), "FM16": (L, C), "FM17": (L, I),
}
RATED_BY_BUG_BAR = {"FM01", "FM02", "FM03", "FM04", "FM05", "FM06", "FM07", "FM08", "FM09"}
# The taxonomy's "is the attacker misusing the system?" column.
VIOLATES_ACCESS = {"FM08", "FM09", "FM10", "FM11"}
COMPROMISES = {
    "FM01": ("integrity",), "FM02": ("integrity",), "FM03": ("confidentiality",),
    "FM04": ("confidentiality",), "FM05": ("confidentiality",), "FM06": ("integrity", "availability"),
    "FM07": ("integrity",), "FM08": ("confidentiality",), "FM09": ("integrity",),
    "FM10": ("confidentiality", "integrity"), "FM11": ("confidentiality", "integrity", "availability"),
}


def raw_catalog() -> dict:
    text = resources.files("redline.catalog").joinpath("modes.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def test_all_seventeen_modes_in_code_order():
    modes = load_modes()
    assert tuple(m.code for m in modes) == MODE_CODES
    assert [m.kind for m in modes] == ["intentional"] * 11 + ["unintentional"] * 6
    assert load_modes() is modes  # cached


@pytest.mark.parametrize("code", MODE_CODES)
def test_bug_bar_ranges(code):
    bar = get_mode(code).bug_bar
    assert (bar.severity_min, bar.severity_max) == EXPECTED_RANGES[code]
    assert bar.rated is (code in RATED_BY_BUG_BAR)
    assert bar.reason and bar.threat


@pytest.mark.parametrize("code", MODE_CODES)
def test_taxonomy_columns(code):
    mode = get_mode(code)
    assert mode.violates_access is (code in VIOLATES_ACCESS)
    assert mode.compromises == COMPROMISES.get(code, ("safety",))
    if mode.intentional:
        assert mode.knowledge, "the taxonomy names the attacker's knowledge for every attack"
    else:
        assert mode.knowledge == ()


@pytest.mark.parametrize("mode", load_modes(), ids=lambda m: m.code)
def test_every_field_is_filled(mode):
    assert mode.name and mode.summary and mode.access_note
    assert mode.scenarios and mode.mitigations and mode.references and mode.avid
    assert all(ref.title for ref in mode.references)
    if mode.intentional:
        assert mode.atlas, "every attack maps to at least one ATLAS technique"
    for technique in mode.atlas:
        assert catalog.atlas_name(technique)
    for category in mode.avid:
        assert catalog.avid_name(category)


def test_well_known_mappings():
    assert "AML.T0043" in get_mode("FM01").atlas
    assert "AML.T0020" in get_mode("FM02").atlas
    assert "AML.T0024.001" in get_mode("FM03").atlas
    assert "AML.T0024.000" in get_mode("FM04").atlas
    assert "AML.T0024.002" in get_mode("FM05").atlas
    assert "AML.T0010" in get_mode("FM09").atlas
    assert "AML.T0018" in get_mode("FM10").atlas
    assert "S0403" in get_mode("FM01").avid and "S0502" in get_mode("FM05").avid


@pytest.mark.parametrize("code", ["FM04", "fm04", " Fm04 "])
def test_get_mode_ignores_case(code):
    assert get_mode(code).name == "Membership inference"


@pytest.mark.parametrize("code", ["FM00", "FM18", "membership", ""])
def test_get_mode_unknown_is_usage_error(code):
    with pytest.raises(UsageError, match="unknown failure mode"):
        get_mode(code)


def test_mode_to_dict_is_the_json_record():
    record = mode_to_dict(get_mode("FM04"))
    for key in ("code", "name", "kind", "summary", "compromises", "knowledge", "violates_access",
                "bug_bar", "atlas", "avid", "mitigations", "scenarios", "references"):
        assert key in record
    assert record["bug_bar"]["threat"] == "Membership Inference"
    assert (record["bug_bar"]["severity_min"], record["bug_bar"]["severity_max"]) == ("Moderate", "Critical")
    assert record["compromises"] == ["confidentiality"] and record["violates_access"] is False
    assert record["references"][0]["year"] == 2017


def test_bug_bar_range_helpers():
    bar = get_mode("FM01").bug_bar
    assert bar.clamp(Severity.LOW) is Severity.IMPORTANT
    assert bar.clamp(Severity.CRITICAL) is Severity.CRITICAL
    assert Severity.MODERATE not in bar and Severity.IMPORTANT in bar
    assert bar.label == "Important to Critical" and get_mode("FM03").bug_bar.label == "Critical"


def test_packaged_file_parses_to_the_same_modes():
    assert parse_modes(raw_catalog()) == load_modes()


def _mutated(edit):
    data = copy.deepcopy(raw_catalog())
    edit(data)
    return data


def _fm(data, code):
    return next(m for m in data["modes"] if m["code"] == code)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["modes"].pop(3), "missing FM04"),
        (lambda d: d["modes"].reverse(), "in order"),
        (lambda d: d.__setitem__("extra", 1), "unknown key"),
        (lambda d: _fm(d, "FM01").__setitem__("colour", "red"), "unknown key"),
        (lambda d: _fm(d, "FM01").pop("summary"), "missing summary"),
        (lambda d: _fm(d, "FM01")["bug_bar"].__setitem__("severity_min", "Severe"), "unknown severity"),
        (lambda d: _fm(d, "FM01")["bug_bar"].__setitem__("severity_min", "None"), "must be Low"),
        (lambda d: _fm(d, "FM04")["bug_bar"].update(severity_min="Critical", severity_max="Moderate"), "above"),
        (lambda d: _fm(d, "FM01").__setitem__("kind", "accidental"), "kind"),
        (lambda d: _fm(d, "FM01").__setitem__("compromises", ["privacy"]), "compromises"),
        (lambda d: _fm(d, "FM01").__setitem__("violates_access", "no"), "true or false"),
        (lambda d: _fm(d, "FM01").__setitem__("atlas", ["AML.T9999"]), "does not define"),
        (lambda d: _fm(d, "FM01").__setitem__("scenarios", []), "must not be empty"),
        (lambda d: _fm(d, "FM01")["references"][0].__setitem__("year", "2018"), "year"),
        (lambda d: d["atlas"].__setitem__("T0043", "x"), "malformed id"),
        (lambda d: d.__setitem__("schema", "redline.modes/2"), "schema"),
    ],
)
def test_validation_rejects_defects(edit, message):
    with pytest.raises(CatalogError, match=message):
        parse_modes(_mutated(edit))


def test_doctests():
    assert doctest.testmod(catalog).failed == 0
