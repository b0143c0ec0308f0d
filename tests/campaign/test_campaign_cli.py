"""`redline campaign` on the command line: help with an example, one-line usage errors (exit 2)."""
from __future__ import annotations

import pytest

from redline.cli import main


def test_help_shows_an_example_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["campaign", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "redline campaign examples/fair.campaign.yaml --workers 2" in text
    assert "--executor ray --address auto" in text and "exit codes" in text


@pytest.mark.parametrize("body, extra, words", [
    ("targets: [zoo:fair_logreg]\nselect: FM05.equation_solving\nseeds: [a]\n", [], "seeds: must be whole numbers"),
    ("targets: [zoo:fair_logreg]\nbudjet: 5\n", [], "budjet: unknown key"),
    ("targets: [zoo:fair_logreg]\nselect: FM05.equation_solving\n", ["--address", "auto"], "--address is for --executor ray"),
])
def test_a_bad_campaign_or_flag_is_one_line_and_exit_2(tmp_path, capsys, body, extra, words):
    campaign = tmp_path / "c.campaign.yaml"
    campaign.write_text(body)
    assert main(["campaign", str(campaign), "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "campaign.sqlite").exists()  # refused before anything was written


def test_workers_must_be_positive(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["campaign", str(tmp_path / "c.yaml"), "--workers", "0"])
    assert done.value.code == 2
