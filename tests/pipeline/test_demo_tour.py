"""`redline demo`'s tour: every family of checks has a row, rows are valid, findings say the
demo's settings were used, and the index opens on a one-screen summary."""
from __future__ import annotations

import json

import pytest

from redline import zoo
from redline.checks import all_checks, plan
from redline.checks.params import resolve_checks
from redline.cli import main
from redline.demo import run_demo
from redline.demo.tour import Tour, TourRow, load_tour
from redline.errors import UsageError
from redline.zoo.expected import explaining

# Tour rows whose entry states no expectation for the check (the verdict is shown as found):
# no zoo entry is a control for reprogramming with confidences, and fuzzing has no twin.
UNSTATED = {("mnist_cnn", "FM06.reprogramming"), ("fair_logreg", "FM11.fuzz")}
# The cheap part of the real tour (tables and small MLPs): run in full by the default suite.
CHEAP = ["fair_tree_overfit", "fair_tree", "fair_logreg", "fair_logreg_labels", "digits_mlp_malicious_lsb"]


def test_every_family_of_checks_has_a_row_in_the_tour():
    """A new family of checks (a mode code with a check, or a new checks/ folder) must join
    the tour with a row, or this fails and names it."""
    tour = load_tour()
    checks = all_checks()
    missing_modes = sorted({cls.mode for cls in checks.values()} - tour.modes())
    assert not missing_modes, f"no tour row (src/redline/demo/tour.yaml) for {missing_modes}"
    folders = {cls.__module__.split(".")[2] for cls in checks.values()}
    toured = {checks[c].__module__.split(".")[2] for row in tour.rows for c in row.checks}
    assert folders <= toured, f"check families without a tour row: {sorted(folders - toured)}"


def test_every_row_names_a_zoo_entry_checks_and_valid_reduced_settings():
    tour = load_tour()
    known = set(zoo.names()) | set(zoo.agent_names())
    checks = all_checks()
    for stop in tour.stops():
        assert stop.target in known, stop.target
        instances = resolve_checks(plan(stop.select), stop.params)  # unknown parameters or bad values raise
        assert [c.id for c in instances] == [c for c in checks if c in stop.checks]
        for check_id, budget in stop.budgets.items():
            assert 0 < budget <= checks[check_id].default_budget, (stop.target, check_id)
        for check_id in stop.checks:
            stated = explaining(zoo.entry(stop.target).expected, check_id) is not None
            assert stated != ((stop.target, check_id) in UNSTATED), (stop.target, check_id)
            if check_id in stop.budgets or check_id in stop.params:
                assert "Demo tour run" in stop.notes[check_id], (stop.target, check_id)
        assert stop.build_seconds > 0 or zoo.entry(stop.target).family in ("logreg", "tree") \
            or zoo.entry(stop.target).serves, stop.target


def test_each_mode_has_a_positive_control_that_the_zoo_expects_to_be_flagged():
    tour = load_tour()
    flagged = set()
    for row in tour.rows:
        for check_id in row.checks:
            e = explaining(zoo.entry(row.target).expected, check_id)
            if e is not None and e.verdict == "vulnerable":
                flagged.add(check_id.split(".")[0])
    assert flagged >= tour.modes() - {"FM06", "FM11"}


def test_the_note_names_each_setting_that_differs_from_the_defaults():
    tour = Tour(rows=(TourRow(target="mnist_cnn", checks=("FM01.pgd",), shows="x", budget=1200,
                              params={"FM01.pgd": {"n_inputs": 32}}),))
    (stop,) = tour.stops()
    note = stop.notes["FM01.pgd"]
    assert "demo budget 1,200 queries (default 20,000)" in note and "n_inputs=32 (default 64)" in note
    assert "redline scan zoo:mnist_cnn --select FM01.pgd" in note
    assert stop.budgets == {"FM01.pgd": 1200}
    (given,) = tour.stops(budget=500)  # the user's --budget replaces the tour's
    assert given.budgets == {} and "--budget 500 queries" in given.notes["FM01.pgd"]
    plain = Tour(rows=(TourRow(target="fair_logreg", checks=("FM05.equation_solving",), shows="x"),))
    assert plain.stops()[0].notes == {}  # defaults: nothing to say


@pytest.mark.parametrize("text, words", [
    ("rows: [{target: fair_logreg, checks: [FM05.equation_solving]}]", "needs target, checks and shows"),
    ("rows: [{target: fair_logreg, checks: [FM05.equation_solving], shows: x, budgets: 3}]", "unknown: budgets"),
    ("rows: [{target: fair_logreg, checks: [FM05.learning], shows: x, params: {FM05.path_finding: {}}}]",
     "which the row does not run"),
    ("rows: [{target: fair_logreg, checks: [], shows: x}]", "list of check ids"),
    ("rows: [{target: fair_logreg, checks: [FM05.learning], shows: x, budget: -1}]", "whole number"),
    ("rows: {}", "'rows' list"),
])
def test_a_malformed_tour_is_a_one_line_usage_error(tmp_path, text, words):
    path = tmp_path / "tour.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=words):
        load_tour(path)


def test_the_runner_refuses_budgets_or_notes_for_checks_it_does_not_run(logreg_problem):
    from redline.pipeline import ScanRequest, run_scan

    model, data = logreg_problem
    with pytest.raises(UsageError, match="FM05.learning, which this scan does not run"):
        run_scan(ScanRequest(target=model, data=data, select="FM05.equation_solving", budgets={"FM05.learning": 5}))
    with pytest.raises(UsageError, match="whole number"):
        run_scan(ScanRequest(target=model, data=data, select="FM05.equation_solving",
                             budgets={"FM05.equation_solving": -3}))


def test_per_check_budgets_and_notes_reach_the_findings(logreg_problem):
    from redline.pipeline import ScanRequest, run_scan

    model, data = logreg_problem
    report = run_scan(ScanRequest(target=model, data=data, select="FM05.learning,FM05.equation_solving", budget=900,
                                  budgets={"FM05.learning": 300}, notes={"FM05.learning": "Ran short."}))
    found = {f.check: f for f in report.findings}
    assert found["FM05.learning"].budget == 300 and found["FM05.learning"].queries <= 300
    assert found["FM05.learning"].summary.endswith("Ran short.")
    assert found["FM05.equation_solving"].budget == 900 and "Ran short." not in found["FM05.equation_solving"].summary


@pytest.mark.timeout(900)
def test_the_cheap_part_of_the_real_tour_meets_every_expectation_and_opens_on_a_summary(tmp_path):
    index = run_demo(tmp_path, names=CHEAP, progress=False)
    page = index.read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["target"] for s in summary] == [f"zoo:{n}" for n in CHEAP]
    for target in summary:
        for c in target["expected"]:
            assert c["found"] == "not run" or c["agrees"], (target["target"], c)
    # The summary comes first: what was scanned, then one line per mode with links to the findings.
    top = page[page.index("id='summary'"):page.index("Expected vs found")]
    assert "Scanned 5 demo models with 6 checks" in top
    for code in ("FM03", "FM05", "FM08", "FM11"):
        assert f"<td class='mono'>{code}</td>" in top
    assert "fair_tree_overfit/report.html#finding-1" in top
    assert "title='differs from the expectation'" not in top  # every verdict as the zoo expects
    assert top.count("title='as expected'") == 5  # FM11 on fair_logreg has no expectation
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["run"] == "tour" and timing["cpu_seconds"] > 0
    assert [t["target"] for t in timing["targets"]] == CHEAP


def test_tour_findings_say_which_demo_settings_they_ran_with(tmp_path):
    tour = Tour(rows=(
        TourRow(target="fair_logreg", checks=("FM05.learning",), shows="a copy from 200 answers", budget=200),
        TourRow(target="fair_logreg", checks=("FM11.fuzz",), shows="fuzzing", params={"FM11.fuzz": {"cases_per_kind": 1}}),
    ))
    run_demo(tmp_path, tour=tour, progress=False)
    report = json.loads((tmp_path / "fair_logreg" / "report.json").read_text())
    found = {f["check"]: f for f in report["findings"]}
    assert found["FM05.learning"]["budget"] == 200
    assert "demo budget 200 queries (default 2,000)" in found["FM05.learning"]["summary"]
    assert "cases_per_kind=1 (default null)" in found["FM11.fuzz"]["summary"]
    md = (tmp_path / "fair_logreg" / "report.md").read_text()
    assert "Demo tour run" in md


def test_demo_command_line(tmp_path, capsys):
    assert main(["demo", "--every-check", "--out", str(tmp_path)]) == 2
    assert "--every-check goes with --full" in capsys.readouterr().err
    assert main(["demo", "--targets", "nope", "--out", str(tmp_path)]) == 2
    assert main(["demo", "--targets", "mnist_cnn_labels", "--out", str(tmp_path)]) == 2  # no tour row
    assert "use --full" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_whole_tour_meets_every_expectation(tmp_path):
    index = run_demo(tmp_path, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for target in summary:
        for c in target["expected"]:
            assert c["found"] == "not run" or c["agrees"], (target["target"], c)
    assert "Every expectation was met." in index.read_text()
