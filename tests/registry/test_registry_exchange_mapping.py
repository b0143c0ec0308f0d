"""The FM01-FM17 -> ATLAS/AVID mapping (modes.yaml) against the taxonomy data (taxonomies.yaml)."""
from __future__ import annotations

import copy
import dataclasses
from importlib import resources

import pytest
import yaml

from redline import catalog
from redline.catalog import CatalogError, load_modes
from redline.registry.exchange.schemas import schema
from redline.registry.exchange.taxonomy import (
    infer_mode,
    load_taxonomies,
    parse_taxonomies,
    unknown_ids,
)


def _raw() -> dict:
    return yaml.safe_load(resources.files("redline.catalog").joinpath("taxonomies.yaml").read_text("utf-8"))


def test_every_id_a_mode_maps_to_is_in_the_taxonomy_data():
    assert unknown_ids(load_modes(), load_taxonomies()) == []


def test_the_check_flags_an_id_missing_from_the_data():
    raw = _raw()
    del raw["atlas"]["techniques"]["AML.T0024.000"]  # FM04 cites it
    del raw["avid"]["sep"]["S0601"]  # FM02 cites it
    doctored = parse_taxonomies(raw)
    assert sorted(unknown_ids(load_modes(), doctored)) == ["FM02: S0601", "FM04: AML.T0024.000"]


def test_names_agree_with_the_catalog_tables():
    tax = load_taxonomies()
    for mode in load_modes():
        for technique in mode.atlas:
            assert catalog.atlas_name(technique) == tax.atlas_techniques[technique].name, technique
        for code in mode.avid:
            assert catalog.avid_name(code) == tax.avid_sep[code], code


def test_sub_techniques_share_their_parent_tactics_and_every_tactic_is_named():
    tax = load_taxonomies()
    for tid, technique in tax.atlas_techniques.items():
        assert technique.tactics and all(t in tax.atlas_tactics for t in technique.tactics)
        if tid.count(".") == 2:
            parent = tid.rsplit(".", 1)[0]
            assert tax.atlas_techniques[parent].tactics == technique.tactics


def test_sep_codes_cover_the_three_risk_domains_and_their_parents_exist():
    tax = load_taxonomies()
    assert {tax.risk_domain(c) for c in tax.avid_sep} == {"Security", "Ethics", "Performance"}
    for code in tax.avid_sep:
        assert code[:3] + "00" in tax.avid_sep, f"{code} has no parent category"
    assert list(tax.avid_lifecycle) == ["L01", "L02", "L03", "L04", "L05", "L06"]


def test_intentional_modes_map_to_security_codes_and_unintentional_ones_do_not():
    tax = load_taxonomies()
    for mode in load_modes():
        domains = {tax.risk_domain(c) for c in mode.avid}
        if mode.intentional:
            assert "Security" in domains, mode.code
        else:
            assert "Security" not in domains, mode.code


def test_every_mode_has_lifecycle_stages():
    tax = load_taxonomies()
    assert set(tax.mode_lifecycle) == {m.code for m in load_modes()}


def test_each_mode_is_recovered_from_its_own_ids():
    for mode in load_modes():
        match = infer_mode([*mode.atlas, *mode.avid])
        assert match is not None and match.mode == mode.code, (mode.code, match)


def test_no_two_modes_cite_the_same_set_of_ids():
    seen = {}
    for mode in load_modes():
        key = frozenset((*mode.atlas, *mode.avid))
        assert key not in seen, f"{mode.code} and {seen.get(key)} cannot be told apart"
        seen[key] = mode.code


def test_inference_prefers_the_more_specific_id_and_reports_the_others():
    match = infer_mode(["AML.T0024", "AML.T0024.002"])  # the parent is shared by FM03-FM05
    assert match.mode == "FM05" and match.ambiguous and set(match.candidates) == {"FM03", "FM04", "FM05"}
    tie = infer_mode(["S0403", "S0400"])  # FM01 and FM07 share both codes: code order decides
    assert tie.mode == "FM01" and tie.candidates[:2] == ("FM01", "FM07")
    assert infer_mode(["AML.T0051", "L06", "AML.T9999"]) is None  # known but unmapped, lifecycle, unknown


def test_avid_schema_lists_exactly_the_taxonomy_labels():
    tax = load_taxonomies()
    impact = schema("avid")["properties"]["impact"]["properties"]["avid"]["properties"]
    assert impact["sep_view"]["items"]["enum"] == [tax.sep_label(c) for c in tax.avid_sep]
    assert impact["lifecycle_view"]["items"]["enum"] == [tax.lifecycle_label(c) for c in tax.avid_lifecycle]
    assert tax.sep_label("P0201") == "P0201: Resilience/ Stability"  # AVID's own spelling


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["atlas"]["techniques"]["AML.T0043.000"].update(tactics=["AML.TA0001"]), "sub-technique"),
    (lambda raw: raw["atlas"]["techniques"]["AML.T0043"].update(tactics=["AML.TA0099"]), "tactics"),
    (lambda raw: raw["lifecycle"].pop("FM09"), "FM09"),
    (lambda raw: raw["lifecycle"].update(FM09=["L07"]), "FM09"),
    (lambda raw: raw["avid"]["sep"].update({"X0100": "bad"}), "malformed"),
    (lambda raw: raw["avid"]["avid_labels"].update({"S0999": "x"}), "avid_labels"),
])
def test_malformed_taxonomy_data_is_refused(edit, message):
    raw = copy.deepcopy(_raw())
    edit(raw)
    with pytest.raises(CatalogError, match=message):
        parse_taxonomies(raw)


def test_a_mode_citing_an_unknown_id_is_reported_by_code():
    mode = dataclasses.replace(load_modes()[0], atlas=("AML.T0043", "AML.T0999"))
    assert unknown_ids([mode], load_taxonomies()) == ["FM01: AML.T0999"]
