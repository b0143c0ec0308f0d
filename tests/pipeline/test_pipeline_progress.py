"""Overall progress and ETA across many checks (and, for the demo, targets and model builds)."""
from __future__ import annotations

import io

import pytest

from redline.pipeline.progress import Overall, Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_no_eta_before_any_work_was_measured():
    overall = Overall([1, 1, 1], clock=Clock())
    assert overall.eta() is None and overall.fraction() == 0.0
    assert overall.text() == "all   0%"


def test_eta_follows_the_measured_pace_weight_for_weight():
    clock = Clock()
    overall = Overall([10, 30, 60], clock=clock)  # expected costs, e.g. seconds on a reference machine
    overall.begin()
    clock.now += 20  # the first unit takes twice its expected 10: the machine runs at half speed
    overall.end()
    assert overall.fraction() == pytest.approx(0.1)
    assert overall.eta() == pytest.approx(90 * 2.0)  # the 90 left, at 2 seconds per unit of weight


def test_the_running_unit_counts_with_the_share_it_reported():
    clock = Clock()
    overall = Overall([10, 10], clock=clock)
    overall.begin()
    clock.now += 5
    overall.advance(25, 100)  # a quarter of 10 done in 5 seconds: 2 s per unit
    assert overall.fraction() == pytest.approx(2.5 / 20)
    assert overall.eta() == pytest.approx(17.5 * 2.0)
    overall.advance(500, 100)  # a check that overshoots its own total is simply done
    assert overall.fraction() == pytest.approx(0.5)


def test_skipped_units_count_as_done_but_not_in_the_pace():
    clock = Clock()
    overall = Overall([50, 10, 10, 30], clock=clock)
    overall.skip()  # a model already in the cache, a check kept by --resume
    assert overall.fraction() == pytest.approx(0.5) and overall.eta() is None
    overall.begin()
    clock.now += 10
    overall.end()
    # The skipped 50 took no time; the pace comes from the 10 that ran (1 s per unit).
    assert overall.eta() == pytest.approx(40.0)
    overall.seek(3)  # a stage that ended early passes over unit 2
    assert overall.cursor == 3 and overall.eta() == pytest.approx(30.0)
    overall.begin()
    clock.now += 60
    overall.end()
    assert overall.fraction() == 1.0 and overall.eta() == pytest.approx(0.0)


def test_zero_weights_and_ends_past_the_plan_do_not_divide_by_zero():
    clock = Clock()
    overall = Overall([0, 0], clock=clock)
    overall.begin()
    clock.now += 1
    overall.end()
    assert overall.eta() is None
    overall.end()
    overall.end()  # more ends than units: no error, stays done
    assert overall.fraction() == 1.0


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_line_shows_the_overall_progress_and_a_plain_stream_stays_as_before():
    tty = FakeTty()
    progress = Progress(stream=tty)
    progress.expect(2)  # a scan of two checks
    progress.start("FM01.pgd", 1, 2)
    progress.update(10, 10)
    progress.finish("vulnerable (Important)")
    assert "FM01.pgd vulnerable (Important)" in tty.getvalue() and "| all  50% eta " in tty.getvalue()

    plain = io.StringIO()
    progress = Progress(stream=plain)
    progress.expect(2)
    progress.start("FM01.pgd", 1, 2)
    progress.finish("vulnerable (Important)")
    assert "all" not in plain.getvalue()  # piped output: the per-check lines only
    assert progress.overall.fraction() == pytest.approx(0.5)  # still counted


def test_a_caller_planned_overall_is_kept_across_scans():
    overall = Overall([1, 1, 1, 1])
    progress = Progress(enabled=False, overall=overall)
    progress.expect(2)  # the first scan of a demo
    progress.start("a", 1, 2)
    progress.finish("ok")
    progress.skip()
    progress.expect(2)  # the second scan does not reset the plan
    assert progress.overall is overall and overall.cursor == 2


def test_a_scan_reports_overall_progress_per_check(tmp_path, logreg_problem):
    from redline.pipeline import ScanRequest, run_scan

    model, data = logreg_problem
    seen = []

    class Watching(Progress):
        def finish(self, outcome):
            super().finish(outcome)
            seen.append(round(self.overall.fraction(), 3))

    request = ScanRequest(target=model, data=data, select="FM05.equation_solving,FM11.fuzz")
    run_scan(request, out_dir=tmp_path / "scan", progress=Watching(enabled=False))
    assert seen == [0.5, 1.0]
    seen.clear()
    run_scan(request, out_dir=tmp_path / "scan", resume=True, progress=Watching(enabled=False))
    assert seen == []  # every check was kept from the first run: skipped, nothing started
