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


def test_progress_counts_jobs_with_an_eta_on_a_terminal_only():
    import io

    from redline.campaign.progress import CampaignProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert CampaignProgress(4, 1).line(0.0).endswith("1/4 jobs eta --:--")  # nothing run yet: no pace
    shown = CampaignProgress(4, 1, stream=Terminal())
    shown.advance()  # one job run now; two left at that pace
    assert "2/4 jobs eta" in shown.stream.getvalue()
    assert CampaignProgress(4, 1).line(10.0).endswith("eta --:--")
    paced = CampaignProgress(5, 1)
    paced.done = 3  # two run in 20 s: two more take about 20 s
    assert paced.line(20.0).endswith("3/5 jobs eta 0:20")
    quiet = CampaignProgress(4, 0, stream=io.StringIO())
    quiet.advance()
    assert quiet.stream.getvalue() == ""


def test_ray_missing_is_a_one_line_hint(monkeypatch, tmp_path):
    import importlib.util

    from redline.campaign.executors import make_executor
    from redline.errors import UsageError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UsageError, match=r"pip install 'redline\[ray\]'"):
        make_executor("ray")
