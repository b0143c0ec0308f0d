"""docs/modes.md is generated from the catalog and must not go stale."""
from __future__ import annotations

from pathlib import Path

from redline.catalog import load_modes
from redline.catalog.docs import DEFAULT_PATH, main, render_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "modes.md"


def test_committed_page_is_current():
    assert DOCS == DEFAULT_PATH
    assert DOCS.read_text(encoding="utf-8") == render_markdown(load_modes()), (
        "docs/modes.md is stale; run: python -m redline.catalog.docs")


def test_page_has_every_mode_and_links_resolve():
    text = render_markdown(load_modes())
    for mode in load_modes():
        assert f"## {mode.code} {mode.name}" in text
    assert "(#fm07-physical-domain-adversarial-example)" in text
    assert "(#fm08-malicious-provider-recovering-training-data)" in text


def test_generator_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "modes.md"
    assert main(["--check", "--out", str(out)]) == 1  # missing counts as stale
    assert main(["--out", str(out)]) == 0
    assert main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    assert main(["--check", "--out", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
