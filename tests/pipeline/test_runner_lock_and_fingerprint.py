"""One scan at a time per --out (an OS lock held for the whole scan), a resume fingerprint that
notices changed input files, and --seed checked at the command line."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import redline
import redline.checks
from redline.cli import main
from redline.errors import UsageError
from redline.pipeline.commands import MAX_SEED, seed_int
from redline.pipeline.runner import LOCK_FILE, OutDirLock, ScanInterrupted, ScanRequest, scan_inputs

# The tree under test (not an installed copy of redline) for the scan subprocess.
SRC = str(Path(redline.__file__).resolve().parents[1])

CHECKS = textwrap.dedent(
    '''
    import os, time
    from pathlib import Path
    from redline.checks.base import Check, Outcome

    class Step(Check):
        def run(self, target, data, budget, rng, ctx):
            runs = Path(os.environ["LK_RUNS"])
            marker = runs / self.id
            marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
            if os.environ.get("LK_INTERRUPT") == self.id:
                raise KeyboardInterrupt
            if os.environ.get("LK_WAIT") == self.id:  # hold the scan here until the test says go
                go = runs / "go"
                deadline = time.time() + 90
                while not go.exists() and time.time() < deadline:
                    time.sleep(0.05)
            target.predict(data.x_test[:3])
            return Outcome(vulnerable=False, metrics={"success_rate": 0.0})

    class First(Step):
        id, mode, title = "FM01.first", "FM01", "first"

    class Second(Step):
        id, mode, title = "FM05.second", "FM05", "second"
    '''
)

SCRIPT = textwrap.dedent(
    '''
    import sys
    import numpy as np
    import redline
    import redline.checks
    from redline.targets.base import InputSpec
    from redline.targets.callable import CallableTarget

    redline.checks.check_modules = lambda: ("lk_checks",)

    def model(x):
        p = 1 / (1 + np.exp(-x.sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    target = CallableTarget(model, input_spec=InputSpec(shape=(3,)), n_classes=2, spec="python:model")
    if sys.argv[1] == "fingerprint":
        from redline.pipeline.runner import ScanRequest
        print(ScanRequest(target=sys.argv[2], data=sys.argv[3]).fingerprint(sys.argv[2], sys.argv[3], {}))
        sys.exit(0)
    data = dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]),
                x_test=np.ones((4, 3)), y_test=np.array([1, 1, 0, 0]))
    redline.scan(target, data, out=sys.argv[1])
    '''
)


@pytest.fixture
def fake_checks(tmp_path, monkeypatch):
    """Two quick checks in place of the registry, in this process and in scan subprocesses."""
    (tmp_path / "lk_checks.py").write_text(CHECKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(redline.checks, "check_modules", lambda: ("lk_checks",))
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("LK_RUNS", str(runs))
    monkeypatch.delenv("LK_INTERRUPT", raising=False)
    monkeypatch.delenv("LK_WAIT", raising=False)
    return runs


def _target():
    from redline.targets.base import InputSpec
    from redline.targets.callable import CallableTarget

    def model(x):
        p = 1 / (1 + np.exp(-x.sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    return CallableTarget(model, input_spec=InputSpec(shape=(3,)), n_classes=2, spec="python:model")


DATA = dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]),
            x_test=np.ones((4, 3)), y_test=np.array([1, 1, 0, 0]))


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines() if line.strip()]


# -- one scan at a time per --out -----------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_second_scan_into_a_folder_another_scan_is_writing_is_refused(tmp_path, fake_checks, capsys):
    (tmp_path / "scan_script.py").write_text(SCRIPT)
    out = tmp_path / "out"
    env = {**os.environ, "LK_RUNS": str(fake_checks), "LK_WAIT": "FM01.first",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC])}
    first = subprocess.Popen([sys.executable, str(tmp_path / "scan_script.py"), str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while not (fake_checks / "FM01.first").exists():  # the first scan is inside its first check
            if time.time() > deadline or first.poll() is not None:
                pytest.fail("the first scan never reached its first check: " + first.stderr.read().decode())
            time.sleep(0.05)
        log_before = (out / "events.jsonl").read_bytes()
        assert b"check_finished" not in log_before  # what the old existence test did not count as work

        # Neither --force (which would delete its log) nor --resume nor a plain scan gets in.
        for how in ({"force": True}, {"resume": True}, {}):
            with pytest.raises(UsageError, match="another scan") as refused:
                redline.scan(_target(), DATA, out=out, **how)
            assert str(out) in str(refused.value) and "--out" in str(refused.value)
        code = main(["scan", "zoo:fair_logreg", "--out", str(out), "--force", "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and "another scan" in err and str(out) in err
        assert (out / "events.jsonl").read_bytes() == log_before
        assert not (out / "report.json").exists()
    finally:
        (fake_checks / "go").write_text("")
        rc = first.wait(timeout=120)
    assert rc == 0, first.stderr.read().decode()

    # The first scan finished undisturbed: one scan in the log, all its checks, its report.
    events = _events(out)
    assert [e["event"] for e in events].count("scan_started") == 1
    assert [e["check"] for e in events if e["event"] == "check_finished"] == ["FM01.first", "FM05.second"]
    assert len(json.loads((out / "report.json").read_text())["findings"]) == 2
    assert {p.name: len(p.read_text()) for p in fake_checks.iterdir() if p.name != "go"} == {
        "FM01.first": 1, "FM05.second": 1}
    assert not (out / LOCK_FILE).exists()  # released (and removed) when the scan ended
    # ... and the folder takes the next scan.
    assert len(redline.scan(_target(), DATA, out=out, resume=True).findings) == 2


def test_the_lock_is_released_on_interrupt_and_on_errors(tmp_path, fake_checks, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("LK_INTERRUPT", "FM05.second")
    with pytest.raises(ScanInterrupted):
        redline.scan(_target(), DATA, out=out)
    assert not (out / LOCK_FILE).exists()
    OutDirLock.acquire(out).release()  # nobody holds it

    monkeypatch.delenv("LK_INTERRUPT")
    with pytest.raises(UsageError, match="other arguments"):  # refused after the lock was taken
        redline.scan(_target(), DATA, out=out, resume=True, seed=3)
    OutDirLock.acquire(out).release()

    def broken_finish(*args, **kwargs):
        raise RuntimeError("boom")

    # An exception out of the scan itself (not a check's, which becomes a finding).
    monkeypatch.setattr("redline.pipeline.runner._finish", broken_finish)
    with pytest.raises(RuntimeError, match="boom"):
        redline.scan(_target(), DATA, out=out, resume=True)
    OutDirLock.acquire(out).release()


def test_a_held_lock_refuses_and_a_stale_lock_file_does_not(tmp_path, fake_checks):
    out = tmp_path / "out"
    out.mkdir()
    # What a scan killed with SIGKILL leaves: the file, but no lock (the kernel dropped it).
    (out / LOCK_FILE).write_text("")
    assert len(redline.scan(_target(), DATA, out=out).findings) == 2

    held = OutDirLock.acquire(out)
    try:
        assert held.held and (out / LOCK_FILE).exists()
        with pytest.raises(UsageError, match="another scan"):
            redline.scan(_target(), DATA, out=out, force=True)
        assert len(_events(out)) > 0  # --force deleted nothing
    finally:
        held.release()
    assert len(redline.scan(_target(), DATA, out=out, force=True).findings) == 2


def test_a_scan_killed_with_sigkill_leaves_a_folder_the_next_scan_can_use(tmp_path, fake_checks):
    (tmp_path / "scan_script.py").write_text(SCRIPT)
    out = tmp_path / "out"
    env = {**os.environ, "LK_RUNS": str(fake_checks), "LK_WAIT": "FM05.second",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC])}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "scan_script.py"), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not (fake_checks / "FM05.second").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert (out / LOCK_FILE).exists()  # left behind ...
    report = redline.scan(_target(), DATA, out=out, resume=True)  # ... and not in the way
    assert [f.check for f in report.findings] == ["FM01.first", "FM05.second"]


# -- the resume fingerprint covers the files' contents ---------------------------------------------


def _write_npz(path: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 3))
    np.savez(path, x_train=x, y_train=(x[:, 0] > 0).astype(int), x_test=x, y_test=(x[:, 1] > 0).astype(int))


def _interrupted_scan_of_a_data_file(tmp_path: Path, monkeypatch) -> tuple[Path, str, Path]:
    """A scan of an npz file stopped by Ctrl-C in its second check: (the file, its spec, --out)."""
    data_file = tmp_path / "d.npz"
    _write_npz(data_file, 20)
    spec = f"npz:{data_file}"
    out = tmp_path / "out"
    monkeypatch.setenv("LK_INTERRUPT", "FM05.second")
    with pytest.raises(ScanInterrupted):
        redline.scan(_target(), spec, out=out)
    monkeypatch.delenv("LK_INTERRUPT")
    return data_file, spec, out


def test_resume_over_a_changed_data_file_is_refused_and_an_unchanged_one_resumes(tmp_path, fake_checks, monkeypatch):
    data_file, spec, out = _interrupted_scan_of_a_data_file(tmp_path, monkeypatch)
    original = data_file.read_bytes()

    _write_npz(data_file, 12)  # same name, other rows
    with pytest.raises(UsageError, match="other arguments or inputs") as refused:
        redline.scan(_target(), spec, out=out, resume=True)
    assert f"data file {data_file}" in str(refused.value) and "changed" in str(refused.value)
    assert "--out" in str(refused.value)

    data_file.write_bytes(original)
    os.utime(data_file, (1, 1))  # a new mtime alone is no change
    done = redline.scan(_target(), spec, out=out, resume=True)
    assert done.complete and [f.check for f in done.findings] == ["FM01.first", "FM05.second"]
    assert (fake_checks / "FM01.first").read_text() == "x"  # kept, not run again


def test_a_scan_started_before_files_were_hashed_still_resumes(tmp_path, fake_checks, monkeypatch):
    """A log whose start records no file digests (written by the version before) is held to
    the fingerprint without them, as then."""
    data_file, spec, out = _interrupted_scan_of_a_data_file(tmp_path, monkeypatch)
    events = _events(out)
    start = next(e for e in events if e["event"] == "scan_started")
    legacy = hashlib.sha256(json.dumps(
        {"target": start["target"], "data": spec, "select": None, "budget": None, "seed": 0, "context": {},
         "params": {}}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    start.pop("inputs")
    start["fingerprint"] = legacy
    (out / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    done = redline.scan(_target(), spec, out=out, resume=True)
    assert done.complete and (fake_checks / "FM01.first").read_text() == "x"  # kept, not run again
    # Once resumed, its later starts carry digests, and a changed file is refused again.
    _write_npz(data_file, 12)
    with pytest.raises(UsageError, match="other arguments or inputs"):
        redline.scan(_target(), spec, out=out, resume=True)


def test_per_role_data_files_are_each_covered(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.npz"
    train.write_text("a,b,y\n1,2,0\n3,4,1\n")
    _write_npz(test, 5)
    spec = f"train=csv:{train}#label=y,test=npz:{test}"
    inputs = scan_inputs(ScanRequest(target="zoo:x"), "zoo:x", spec)
    assert set(inputs) == {f"data file {train}", f"data file {test}"}
    before = ScanRequest(target="zoo:x").fingerprint("zoo:x", spec, {})
    train.write_text("a,b,y\n1,2,1\n3,4,1\n")
    assert ScanRequest(target="zoo:x").fingerprint("zoo:x", spec, {}) != before


def test_resume_over_a_changed_model_file_or_target_config_is_refused(tmp_path, fake_checks, monkeypatch):
    pytest.importorskip("skops")
    from skops.io import dump
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    model_file = tmp_path / "m.skops"
    dump(LogisticRegression(C=1.0).fit(x, y), model_file)
    data_file = tmp_path / "d.npz"
    np.savez(data_file, x_test=x, y_test=y)
    config = tmp_path / "api.yaml"
    config.write_text("outputs: probabilities\n")
    target, data, out = f"sklearn:{model_file}", f"npz:{data_file}", tmp_path / "out"

    monkeypatch.setenv("LK_INTERRUPT", "FM05.second")
    with pytest.raises(ScanInterrupted):
        redline.scan(target, data, out=out, target_config=str(config))
    monkeypatch.delenv("LK_INTERRUPT")
    model_bytes = model_file.read_bytes()

    dump(LogisticRegression(C=0.01).fit(x, 1 - y), model_file)
    with pytest.raises(UsageError, match=f"model file {model_file}"):
        redline.scan(target, data, out=out, target_config=str(config), resume=True)
    model_file.write_bytes(model_bytes)

    config.write_text("outputs: labels\n")
    with pytest.raises(UsageError, match="target config"):
        redline.scan(target, data, out=out, target_config=str(config), resume=True)
    with pytest.raises(UsageError, match="other arguments"):  # a config where there was none is a change too
        redline.scan(target, data, out=out, resume=True)

    config.write_text("outputs: probabilities\n")
    done = redline.scan(target, data, out=out, target_config=str(config), resume=True)
    assert done.complete
    assert (fake_checks / "FM01.first").read_text() == "x"


def test_specs_that_name_no_local_file_stay_text(tmp_path):
    for target, data in (("zoo:fair_logreg", "builtin:digits"), ("http://127.0.0.1:9/predict", "builtin:fair"),
                         ("py:somepackage.models:make", "env:CartPole-v1"), ("python:model", "arrays")):
        request = ScanRequest(target=target, data=data)
        assert scan_inputs(request, target, data) == {}
    # Without file inputs the fingerprint is what it always was: resumes of earlier scans stay valid.
    assert ScanRequest(target="zoo:fair_logreg").fingerprint("zoo:fair_logreg", "", {}) == "e64f6a3c8d86ae80"


def test_the_fingerprint_is_the_same_in_another_process(tmp_path):
    (tmp_path / "lk_checks.py").write_text(CHECKS)
    (tmp_path / "scan_script.py").write_text(SCRIPT)
    data_file = tmp_path / "d.npz"
    _write_npz(data_file, 8)
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(b"not really onnx, but a file")
    target, data = "onnx:m.onnx", "npz:d.npz"  # relative, as typed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC])}

    def other_process() -> str:
        run = subprocess.run([sys.executable, "scan_script.py", "fingerprint", target, data], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    first = other_process()
    os.utime(data_file, (1, 1))
    os.utime(model_file, (1, 1))
    assert other_process() == first
    model_file.write_bytes(b"another file")
    assert other_process() != first


# -- --seed -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5", "x"])
def test_a_bad_seed_is_a_one_line_usage_error(seed, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse's exit, 2
        main(["scan", "zoo:fair_logreg", "--select", "FM05", "--seed", seed, "--out", str(tmp_path / "o"),
              "--no-progress"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "--seed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_seed_bounds():
    assert seed_int("0") == 0 and seed_int(str(MAX_SEED)) == MAX_SEED
    with pytest.raises(UsageError, match="seed"):
        redline.scan("zoo:fair_logreg", select="FM05", seed=-1)
