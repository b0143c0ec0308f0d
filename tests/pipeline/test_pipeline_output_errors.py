"""A file in --out that cannot be written (a full disk, a file-size limit) stops the scan as
Ctrl-C does: one line naming the file and the OS error, exit 3, the finished checks kept in
events.jsonl, and the check that was running left unfinished so --resume runs it again."""
from __future__ import annotations

import errno
import json
import os
import resource
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import redline
import redline.checks
from redline.cli import main
from redline.errors import OutputError
from redline.pipeline.events import EventLog
from redline.targets.base import InputSpec
from redline.targets.callable import CallableTarget

# Three quick checks; FM05.second saves a large array as an artifact (save_arrays).
CHECKS = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    import numpy as np

    from redline.checks.base import Check, Outcome
    from redline.util.evidence import save_arrays

    class Step(Check):
        def run(self, target, data, budget, rng, ctx):
            runs = Path(os.environ["RA_RUNS"])
            marker = runs / self.id
            marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
            target.predict(data.x_test[:3])
            evidence = {}
            if self.id == "FM05.second":
                noise = np.random.default_rng(0).random(40_000)  # about 300 KB, beyond the test's file-size limit
                evidence["arrays"] = save_arrays(ctx, self.id + "-noise.npz", noise=noise)
            return Outcome(vulnerable=self.id == "FM05.second", metrics={"queries": 3}, evidence=evidence)

    class First(Step):
        id, mode, title = "FM01.first", "FM01", "first"

    class Second(Step):
        id, mode, title = "FM05.second", "FM05", "second"

    class Third(Step):
        id, mode, title = "FM03.third", "FM03", "third"
    '''
)

DATA = dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]),
            x_test=np.ones((4, 3)), y_test=np.array([1, 1, 0, 0]))


@pytest.fixture
def fake_checks(tmp_path, monkeypatch):
    from redline.triage.rules import load_rules

    load_rules()  # the triage rules read the real checks' metric names: load them before the fakes stand in
    (tmp_path / "io_checks.py").write_text(CHECKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(redline.checks, "check_modules", lambda: ("io_checks",))
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("RA_RUNS", str(runs))
    return runs


def _target():
    def model(x):
        p = 1 / (1 + np.exp(-x.sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    return CallableTarget(model, input_spec=InputSpec(shape=(3,)), n_classes=2, spec="python:model")


def _runs(runs):
    return {p.name: len(p.read_text()) for p in runs.iterdir()}


def _events(out):
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()]


def _disk_full(monkeypatch, module, name, when=lambda *a, **k: True):
    """Make ``module.name`` fail with ENOSPC (as a full disk does) whenever ``when(args)`` says so."""
    real = getattr(module, name)

    def failing(*args, **kwargs):
        if when(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)


def test_an_artifact_that_cannot_be_written_stops_the_scan_and_resume_runs_that_check_again(
        tmp_path, fake_checks, monkeypatch):
    import redline.util.evidence as evidence

    out = tmp_path / "out"
    _disk_full(monkeypatch, evidence.np, "savez_compressed")
    with pytest.raises(OutputError) as stop:
        redline.scan(_target(), DATA, out=out, formats="json")
    path = out / "artifacts" / "FM05.second-noise.npz"
    assert str(stop.value) == f"cannot write {path}: No space left on device"
    assert stop.value.errno == errno.ENOSPC and stop.value.kept == 2  # FM01.first and FM03.third ran before
    finished = [e["check"] for e in _events(out) if e["event"] == "check_finished"]
    assert finished == ["FM01.first", "FM03.third"]  # not FM05.second: it did not finish
    assert not path.exists()

    monkeypatch.undo()  # room again (and the fixture's settings back)
    monkeypatch.setattr(redline.checks, "check_modules", lambda: ("io_checks",))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RA_RUNS", str(fake_checks))
    done = redline.scan(_target(), DATA, out=out, formats="json", resume=True)
    assert done.complete and [f.status.value for f in done.findings] == ["not_vulnerable", "not_vulnerable",
                                                                          "vulnerable"]
    second = next(f for f in done.findings if f.check == "FM05.second")
    assert second.evidence["arrays"] == "artifacts/FM05.second-noise.npz" and path.is_file()
    assert _runs(fake_checks) == {"FM01.first": 1, "FM03.third": 1, "FM05.second": 2}


def test_cli_a_report_that_cannot_be_written_is_one_line_exit_3_and_resume_writes_it(
        tmp_path, fake_checks, monkeypatch, capsys):
    import redline.report.writers as writers

    out = tmp_path / "out"
    argv = ["scan", "zoo:fair_logreg", "--out", str(out), "--no-progress", "--format", "json,html"]
    _disk_full(monkeypatch, writers, "atomic_write_text", when=lambda path, text: str(path).endswith(".html"))
    assert main(argv) == 3  # not 1 ("a finding reached --fail-on"): FM05.second is vulnerable
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"redline: cannot write {out / 'report.html'}: No space left on device;")
    assert "the 3 check(s) that finished are kept" in err
    words = shlex.split(err.split("once there is room, run: ", 1)[1])
    assert words == ["redline", *argv, "--resume"]
    assert not (out / "report.html").exists()

    monkeypatch.undo()
    monkeypatch.setattr(redline.checks, "check_modules", lambda: ("io_checks",))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RA_RUNS", str(fake_checks))
    assert main(words[1:]) == 1
    assert (out / "report.html").is_file() and json.loads((out / "report.json").read_text())["complete"] is True
    assert _runs(fake_checks) == {"FM01.first": 1, "FM03.third": 1, "FM05.second": 1}  # nothing ran again


def test_an_event_log_that_cannot_be_appended_stops_the_scan_with_one_error(tmp_path, fake_checks, monkeypatch):
    import redline.pipeline.events as events

    out = tmp_path / "out"
    appended = []

    def fsync(fd):
        appended.append(fd)
        if len(appended) == 4:  # scan_started, check_started, check_finished, then the next check's start
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(events.os, "fsync", fsync)
    with pytest.raises(OutputError) as stop:
        redline.scan(_target(), DATA, out=out, formats="json")
    assert str(stop.value) == f"cannot write {out / 'events.jsonl'}: No space left on device"
    assert stop.value.__suppress_context__ and stop.value.kept == 1
    assert not (out / "report.json").exists()


def test_after_a_torn_last_line_the_next_event_starts_on_a_line_of_its_own(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.append("scan_started", fingerprint="f")
    with open(log.path, "a") as fh:
        fh.write('{"event": "check_finished", "finding": {"id"')  # the disk filled up mid-line
    again = EventLog(log.path)  # a --resume, once there is room
    again.append("scan_started", fingerprint="f")
    again.append("check_finished", check="FM01.x", finding={"id": "abc"})
    assert [e["event"] for e in again.read()] == ["scan_started", "scan_started", "check_finished"]
    lines = log.path.read_text().splitlines()
    assert len(lines) == 4 and lines[1] == '{"event": "check_finished", "finding": {"id"'


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE as Linux enforces it")
def test_a_real_file_size_limit_is_one_line_exit_3_and_resume_finishes(tmp_path, fake_checks):
    """No mock: the kernel refuses the artifact past RLIMIT_FSIZE (EFBIG; Python ignores SIGXFSZ)."""
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import redline.checks
        from redline.triage.rules import load_rules
        load_rules()
        redline.checks.check_modules = lambda: ("io_checks",)
        from redline.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    argv = [sys.executable, "-c", script, "scan", "zoo:fair_logreg", "--out", str(out), "--no-progress",
            "--format", "json"]

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "RA_RUNS": str(fake_checks)}
    stopped = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limited, env=env, timeout=300)
    assert stopped.returncode == 3, stopped.stderr
    assert len(stopped.stderr.strip().splitlines()) == 1 and "Traceback" not in stopped.stderr, stopped.stderr
    assert stopped.stderr.startswith(f"redline: cannot write {out / 'artifacts' / 'FM05.second-noise.npz'}: "
                                     "File too large;")
    finished = [e["check"] for e in _events(out) if e["event"] == "check_finished"]
    assert "FM05.second" not in finished

    resumed = subprocess.run(argv + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 1, resumed.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and {f["check"]: f["status"] for f in report["findings"]}["FM05.second"] == "vulnerable"
