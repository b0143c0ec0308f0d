"""Near-identical text: numbers, case and punctuation do not tell cases apart; other words do."""
from __future__ import annotations

from redline.registry import dedup


def _sig(title, summary, check="FM04.lira", target="zoo:x"):
    return dedup.signature(dedup.case_text("FM04", check, target, title, summary))


def test_normalising_drops_numbers_case_and_punctuation():
    assert dedup.normalise("AUC 0.81, TPR@0.1%: 12 (of 3,000)!") == "auc # tpr # # of #"


def test_a_resubmission_is_identical_and_a_rewording_is_close_but_another_failure_is_not():
    original = _sig("Members of the training set are recognised",
                    "The attack tells members from non-members with AUC 0.81 after 2000 queries.")
    resubmitted = _sig("MEMBERS of the training set are recognised!",
                       "The attack tells members from non-members with AUC 0.79 after 1,950 queries")
    reworded = _sig("Members of the training set are recognised",
                    "The attacker tells members from non-members with AUC 0.8 after 2000 queries; confirmed twice.")
    other = _sig("Confidence scores reveal the sensitive attribute",
                 "Attribute inference recovers the income bracket of 71% of respondents.")
    assert dedup.similarity(original, resubmitted) == 1.0
    assert dedup.THRESHOLD <= dedup.similarity(original, reworded) < 1.0
    assert dedup.similarity(original, other) < 0.3


def test_signatures_are_stable_and_bands_find_near_duplicates():
    a = _sig("Model stealing by equation solving", "Nine queries recover the weights exactly.")
    assert a == _sig("Model stealing by equation solving", "Nine queries recover the weights exactly.")
    assert len(a) == dedup.PERMUTATIONS and len(dedup.bands(a)) == dedup.BANDS
    close = _sig("Model stealing by equation solving", "Nine queries recover the weights nearly exactly.")
    assert set(dedup.bands(a)) & set(dedup.bands(close))  # a candidate for the comparison
    assert dedup.signature("") == [0] * dedup.PERMUTATIONS and dedup.similarity([], []) == 0.0
