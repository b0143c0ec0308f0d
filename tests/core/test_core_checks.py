import pytest

from redline.checks import Check, Needs, NotApplicable, Outcome, all_checks, plan
from redline.defences.labels_only import LabelOnlyTarget
from redline.errors import UsageError
from redline.findings import Status


class SpendsQueries(Check):
    id, mode, title = "FM99.spend", "FM01", "test check"
    needs = Needs(outputs="probabilities")

    def __init__(self, rows=10, crash=False, give_up=False):
        self.rows, self.crash, self.give_up = rows, crash, give_up

    def run(self, target, data, budget, rng, ctx):
        target.predict(data.x_test[: self.rows])
        with target.ledger.evaluating():
            target.predict(data.x_test[:5])
        if self.give_up:
            raise NotApplicable("nothing to attack here")
        if self.crash:
            raise RuntimeError("boom")
        return Outcome(vulnerable=True, metrics={"success_rate": 1.0})


def test_finding_carries_exact_query_counts_params_and_seed(linear_target, blob_data):
    finding = SpendsQueries(rows=12)(linear_target, blob_data, budget=100, seed=3)
    assert finding.status is Status.VULNERABLE
    assert (finding.queries, finding.evaluation_queries) == (12, 5)
    assert finding.queries + finding.evaluation_queries == linear_target.answered
    assert finding.params == {"rows": 12, "crash": False, "give_up": False} and finding.seed == 3
    # Same check, target, params, seed and budget: same id; another seed: another id.
    assert finding.id == SpendsQueries(rows=12)(linear_target, blob_data, budget=100, seed=3).id
    assert finding.id != SpendsQueries(rows=12)(linear_target, blob_data, budget=100, seed=4).id


def test_params_round_trip_like_scikit_learn():
    check = SpendsQueries(rows=3)
    clone = SpendsQueries(**check.get_params())
    assert clone.get_params() == check.get_params()
    with pytest.raises(UsageError, match="no parameter"):
        check.set_params(nope=1)


def test_a_crash_becomes_an_error_finding(linear_target, blob_data):
    finding = SpendsQueries(crash=True)(linear_target, blob_data, budget=100)
    assert finding.status is Status.ERROR and "boom" in finding.reason
    assert finding.queries == 10  # what was spent before the crash is still reported


def test_over_budget_is_an_error_not_a_silent_truncation(linear_target, blob_data):
    finding = SpendsQueries(rows=50)(linear_target, blob_data, budget=20)
    assert finding.status is Status.ERROR and "budget" in finding.reason
    assert finding.queries == 0


def test_missing_capability_is_not_applicable_with_reason(linear_target, blob_data):
    finding = SpendsQueries()(LabelOnlyTarget(linear_target), blob_data)
    assert finding.status is Status.NOT_APPLICABLE and "labels only" in finding.reason
    assert SpendsQueries(give_up=True)(linear_target, blob_data).reason == "nothing to attack here"
    assert SpendsQueries()(linear_target, None).status is Status.NOT_APPLICABLE


def test_plan_selects_by_mode_and_by_check_id():
    ids = list(all_checks())
    assert "FM01.pgd" in ids and "FM05.equation_solving" in ids
    fm05 = [c.id for c in plan("FM05")]
    assert "FM05.equation_solving" in fm05 and all(c.startswith("FM05.") for c in fm05)
    assert [c.id for c in plan("fm01.pgd,FM05.equation_solving")] == ["FM01.pgd", "FM05.equation_solving"]
    from redline.catalog import MODE_CODES
    from redline.checks import checks_by_mode

    # A mode without checks would silently test nothing (which modes lack one changes as checks are added).
    empty = [code for code in MODE_CODES if code not in checks_by_mode() and code != "FM09"]
    if empty:
        with pytest.raises(UsageError, match=f"no check tests {empty[-1]} yet; modes with checks: FM01"):
            plan(empty[-1])
    assert plan("FM09") == []  # tested by the static scan of a model file, not by a check
    for bad in ("FM18", "FM01.nope", "pgd"):
        with pytest.raises(UsageError):
            plan(bad)
