"""kill -9 in the middle of a scan, then --resume: nothing finished is lost or redone."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import redline

# The tree under test (not an installed copy of redline) for the scan subprocess.
SRC = str(Path(redline.__file__).resolve().parents[1])

CHECKS = textwrap.dedent(
    '''
    import os, time
    from pathlib import Path
    from redline.checks.base import Check, Outcome

    RUNS = Path(os.environ["RUNS_DIR"])

    class Step(Check):
        def run(self, target, data, budget, rng, ctx):
            marker = RUNS / self.id
            marker.write_text(marker.read_text() + "x" if marker.exists() else "x")
            target.predict(data.x_test[:3])
            time.sleep(float(os.environ.get("SLEEP_" + self.id.replace(".", "_"), "0")))
            return Outcome(vulnerable=False, metrics={"success_rate": 0.0})

    class First(Step):
        id, mode, title = "FM01.first", "FM01", "first"

    class Second(Step):
        id, mode, title = "FM02.second", "FM02", "second"

    class Third(Step):
        id, mode, title = "FM03.third", "FM03", "third"
    '''
)

SCRIPT = textwrap.dedent(
    '''
    import sys
    import numpy as np
    import redline
    import redline.checks
    from redline.errors import UsageError
    from redline.targets.base import InputSpec
    from redline.targets.callable import CallableTarget

    redline.checks.check_modules = lambda: ("resume_checks",)

    def model(x):
        p = 1 / (1 + np.exp(-x.sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    target = CallableTarget(model, input_spec=InputSpec(shape=(3,)), n_classes=2, spec="python:model")
    data = dict(x_train=np.zeros((4, 3)), y_train=np.array([0, 1, 0, 1]),
                x_test=np.ones((4, 3)), y_test=np.array([1, 1, 0, 0]))
    try:
        redline.scan(target, data, out=sys.argv[1], resume="--resume" in sys.argv, seed=int(sys.argv[2]))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    '''
)


def _events(out):
    path = out / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # the scan may be writing this line right now
            pass
    return events


@pytest.mark.timeout(120)
def test_resume_after_kill_keeps_finished_checks_and_runs_the_rest(tmp_path):
    (tmp_path / "resume_checks.py").write_text(CHECKS)
    (tmp_path / "scan_script.py").write_text(SCRIPT)
    runs = tmp_path / "runs"
    runs.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "RUNS_DIR": str(runs), "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC]), "SLEEP_FM02_second": "60"}
    cmd = [sys.executable, str(tmp_path / "scan_script.py"), str(out)]
    proc = subprocess.Popen(cmd + ["0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        # The check's own marker, not the check_started event: under load the kill could
        # otherwise land between the event and the check's first line.
        if (runs / "FM02.second").exists():
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the scan never reached the second check: " + proc.stderr.read().decode())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "report.json").exists()
    finished = [e["check"] for e in _events(out) if e["event"] == "check_finished"]
    assert finished == ["FM01.first"]

    env["SLEEP_FM02_second"] = "0"
    done = subprocess.run(cmd + ["0", "--resume"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert [f["check"] for f in report["findings"]] == ["FM01.first", "FM02.second", "FM03.third"]
    # The first check ran once (kept), the second twice (killed, then redone), the third once.
    assert {p.name: len(p.read_text()) for p in runs.iterdir()} == {"FM01.first": 1, "FM02.second": 2, "FM03.third": 1}

    # Resuming with other arguments is refused instead of mixing two scans.
    other = subprocess.run(cmd + ["7", "--resume"], env=env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 2 and "other arguments" in other.stderr
