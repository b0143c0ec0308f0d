"""One redline membership check run for a benchmark: its finding and the per-record scores
it judged (read back from the evidence file the check writes), shared by the FM04 benchmarks."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def run_membership_check(check, target, data, seed: int, label: str):
    """(finding, scores, is_member, seconds) of ``check`` on ``target`` with an unlimited budget;
    a check that errs or does not apply ends the benchmark with its reason. Every member and
    non-member of ``data`` must have been scored."""
    from redline.checks.base import CheckContext

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        finding = check(target, data, budget=10**6, seed=seed, ctx=CheckContext(Path(folder)))
        seconds = time.perf_counter() - start
        if finding.status.name in ("ERROR", "NOT_APPLICABLE"):
            raise SystemExit(f"redline {label} on {target.spec}: {finding.status.name} {finding.reason}")
        with np.load(Path(folder) / finding.evidence["examples"]) as saved:
            scores, is_member = saved["scores"].astype(np.float64), saved["is_member"].astype(bool)
    assert int(is_member.sum()) == len(data.x_train) and int((~is_member).sum()) == len(data.x_test)
    return finding, scores, is_member, seconds
