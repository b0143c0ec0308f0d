"""No work lost: an earlier report is never overwritten by accident, Ctrl-C keeps what finished,
and an --out that cannot be written is refused before a single query."""
from __future__ import annotations

import json
import os
import shlex
import textwrap

import numpy as np
import pytest

import redline
import redline.checks
from redline.cli import main
from redline.errors import UsageError
from redline.pipeline.runner import ScanInterrupted
from redline.targets.base import InputSpec
from redline.targets.callable import CallableTarget

CHECKS = textwrap.dedent(
    '''
    import os
    from pathlib import Path
    from redline.checks.base import Check, Outcome

    class Step(Check):
        def run(self, target, data, budget, rng, ctx):
            runs = Path(os.environ["RA_RUNS"])
            marker = runs / self.id
            marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
            if os.environ.get("RA_INTERRUPT") == self.id:
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of a check
            target.predict(data.x_test[:3])
            path, rel = ctx.artifact(self.id + ".txt")
            if path is not None:
                path.write_text("evidence")
            return Outcome(vulnerable=self.id == "FM05.second", metrics={"fidelity": 0.97, "queries": 3},
                           evidence={"file": rel} if rel else {})

    class First(Step):
        id, mode, title = "FM01.first", "FM01", "first"

    class Second(Step):
        id, mode, title = "FM05.second", "FM05", "second"

    class Third(Step):
        id, mode, title = "FM03.third", "FM03", "third"
    '''
)


@pytest.fixture
def fake_checks(tmp_path, monkeypatch):
    """Three quick checks in place of the real registry; RA_RUNS counts how often each ran."""
    (tmp_path / "ra_checks.py").write_text(CHECKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(redline.checks, "check_modules", lambda: ("ra_checks",))
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("RA_RUNS", str(runs))
    monkeypatch.delenv("RA_INTERRUPT", raising=False)
    return runs


def _counted_target():
    calls = {"rows": 0}

    def model(x):
        calls["rows"] += len(x)
        p = 1 / (1 + np.exp(-x.sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    target = CallableTarget(model, input_spec=InputSpec(shape=(3,)), n_classes=2, spec="python:model")
    return target, calls


DATA = dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]),
            x_test=np.ones((4, 3)), y_test=np.array([1, 1, 0, 0]))


def _runs(runs):
    return {p.name: len(p.read_text()) for p in runs.iterdir()}


def test_second_scan_into_the_same_folder_loses_nothing(tmp_path, fake_checks):
    out = tmp_path / "out"
    target, calls = _counted_target()
    first = redline.scan(target, DATA, out=out, formats="json,html")
    assert [f.check for f in first.findings] == ["FM01.first", "FM03.third", "FM05.second"]
    before = {name: (out / name).read_bytes() for name in ("events.jsonl", "report.json", "report.html")}
    (out / "notes.txt").write_text("mine")

    # Refused, before any query, and nothing in the folder changes.
    rows = calls["rows"]
    with pytest.raises(UsageError) as refused:
        redline.scan(target, DATA, out=out)
    assert "--resume" in str(refused.value) and "--force" in str(refused.value)
    assert calls["rows"] == rows
    assert {name: (out / name).read_bytes() for name in before} == before

    # --resume keeps every finding and runs nothing again.
    resumed = redline.scan(target, DATA, out=out, resume=True, formats="json,html")
    assert [f.id for f in resumed.findings] == [f.id for f in first.findings]
    assert _runs(fake_checks) == {"FM01.first": 1, "FM05.second": 1, "FM03.third": 1}
    assert calls["rows"] == rows

    # --force replaces redline's own files only: the user's notes stay.
    replaced = redline.scan(target, DATA, out=out, force=True, formats="json")
    assert len(replaced.findings) == 3
    assert not (out / "report.html").exists()  # the old HTML would describe the old scan
    assert (out / "notes.txt").read_text() == "mine"
    assert _runs(fake_checks) == {"FM01.first": 2, "FM05.second": 2, "FM03.third": 2}
    with pytest.raises(UsageError, match="only one"):
        redline.scan(target, DATA, out=out, force=True, resume=True)


def test_cli_refuses_a_used_folder_with_one_line_naming_both_options(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    code = main(["scan", "zoo:fair_logreg", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--resume" in err and "--force" in err
    assert (out / "report.json").read_text() == "{}"


def test_a_scan_that_stopped_before_any_check_does_not_block_the_next(tmp_path, fake_checks):
    """A log with no finished check (e.g. a model file refused by its static scan) holds no
    work: the next scan into that folder runs without --force; one finished check does."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").write_text('{"event": "scan_started"}\n{"event": "check_started"}\n')
    target, _ = _counted_target()
    report = redline.scan(target, DATA, out=out)
    assert len(report.findings) == 3
    with pytest.raises(UsageError, match="already holds a scan"):
        redline.scan(target, DATA, out=out)


@pytest.mark.parametrize("where", ["/proc/redline-nope", "/proc/self/redline-nope/out"])
def test_unwritable_out_is_a_one_line_error_before_any_query(where, capsys):
    code = main(["scan", "zoo:fair_logreg", "--out", where, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("redline: error: cannot write to --out") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into write-protected folders anyway")
def test_write_protected_parent_is_refused(tmp_path, fake_checks):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    target, calls = _counted_target()
    try:
        with pytest.raises(UsageError, match="cannot write to --out"):
            redline.scan(target, DATA, out=locked / "out")
    finally:
        locked.chmod(0o755)
    assert calls["rows"] == 0


def test_interrupt_writes_a_partial_report_and_resume_finishes_it(tmp_path, fake_checks, monkeypatch):
    out = tmp_path / "out"
    target, _ = _counted_target()
    monkeypatch.setenv("RA_INTERRUPT", "FM03.third")  # the second check in run order
    with pytest.raises(ScanInterrupted) as stop:
        redline.scan(target, DATA, out=out, formats="json,html,md")
    assert isinstance(stop.value, KeyboardInterrupt)  # code that stops on Ctrl-C still stops
    partial = json.loads((out / "report.json").read_text())
    assert partial["complete"] is False
    assert partial["pending_checks"] == ["FM03.third", "FM05.second"]
    assert [f["check"] for f in partial["findings"]] == ["FM01.first"]
    assert "Incomplete report" in (out / "report.html").read_text()
    assert "Incomplete report" in (out / "report.md").read_text()
    events = [json.loads(line)["event"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert events[-1] == "scan_interrupted"

    monkeypatch.delenv("RA_INTERRUPT")
    done = redline.scan(target, DATA, out=out, resume=True, formats="json,html")
    assert done.complete and not done.pending_checks
    assert [f.check for f in done.findings] == ["FM01.first", "FM03.third", "FM05.second"]
    assert _runs(fake_checks) == {"FM01.first": 1, "FM03.third": 2, "FM05.second": 1}
    assert "Incomplete report" not in (out / "report.html").read_text()


def test_cli_interrupt_prints_the_exact_resume_command(tmp_path, fake_checks, monkeypatch, capsys):
    out = tmp_path / "out dir"  # a space: the printed command must quote it
    argv = ["scan", "zoo:fair_logreg", "--out", str(out), "--no-progress", "--format", "json,html", "--force"]
    monkeypatch.setenv("RA_INTERRUPT", "FM05.second")
    assert main(argv) == 130
    err = capsys.readouterr().err
    hint = [line for line in err.splitlines() if "to finish the scan, run:" in line]
    assert hint, err
    command = hint[0].split("run: ", 1)[1]
    words = shlex.split(command)
    assert words[0] == "redline" and words[-1] == "--resume" and "--force" not in words
    assert words[1:-1] == [w for w in argv if w != "--force"]
    assert json.loads((out / "report.json").read_text())["complete"] is False

    monkeypatch.delenv("RA_INTERRUPT")
    assert main(words[1:]) in (0, 1)
    final = json.loads((out / "report.json").read_text())
    assert final["complete"] is True and len(final["findings"]) == 3
    assert _runs(fake_checks)["FM01.first"] == 1  # finished before the interruption: kept
