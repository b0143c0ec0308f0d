"""Terminal views of the catalog."""
from __future__ import annotations

from redline.catalog import get_mode, load_modes
from redline.catalog.render import checks_per_mode, render_record, render_table


def test_table_lists_every_mode_on_its_own_line():
    text = render_table(load_modes())
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["CODE", "NAME"] and "CHECKS" not in lines[0]
    for mode in load_modes():
        line = next(l for l in lines if l.startswith(mode.code))
        assert mode.name in line and mode.kind in line and mode.bug_bar.label in line
    assert "FM04  Membership inference" in text
    assert "C confidentiality" in lines[-1]


def test_table_columns_line_up():
    lines = render_table(load_modes()).splitlines()[:18]
    column = lines[0].index("BUG BAR")
    assert all(line[column - 2:column] == "  " for line in lines)


def test_table_counts_checks_from_ids_or_mapping():
    ids = ["FM01.pgd", "FM01.hopskipjump", "FM04.lira"]
    for checks in (ids, {"FM01": ids[:2], "FM04": ids[2:]}):
        lines = render_table(load_modes(), checks).splitlines()
        assert lines[0].rstrip().endswith("CHECKS")
        counts = {line[:4]: line.split()[-1] for line in lines[1:18]}
        assert counts["FM01"] == "2" and counts["FM04"] == "1" and counts["FM02"] == "0"


def test_checks_per_mode_groups_by_prefix():
    assert checks_per_mode(["fm04.lira", "FM04.shadow", "FM05.x"]) == {
        "FM04": ["fm04.lira", "FM04.shadow"], "FM05": ["FM05.x"]}


def test_record_has_every_section():
    text = render_record(get_mode("FM05"), ["FM05.equation_solving"])
    for heading in ("Summary", "Bug bar", "Access", "Scenarios", "Mitigations", "Checks",
                    "MITRE ATLAS", "AVID", "References"):
        assert f"\n{heading}\n" in text
    assert text.startswith("FM05  Model stealing")
    assert "  - FM05.equation_solving" in text
    assert "AML.T0024.002  Exfiltration via ML Inference API: Extract ML Model" in text
    assert "Important to Critical (Model Stealing)" in text
    assert "Tramèr" in text and "https://arxiv.org/abs/1609.02943" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_record_without_checks_or_atlas():
    text = render_record(get_mode("FM12"), [])
    assert "Checks\n  none yet" in text
    assert "none (no adversary technique applies)" in text
    assert "attacker knowledge: none (no attacker)" in text
