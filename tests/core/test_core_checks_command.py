"""`redline checks [CHECK] [--json]`: every check and the parameters --set can change."""
import json

import pytest

from redline.checks import all_checks
from redline.cli import main


def test_table_lists_every_check(capsys):
    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    for check_id in all_checks():
        assert f"\n{check_id} " in out
    assert "--set CHECK.PARAM=VALUE" in out


def test_one_check_shows_types_defaults_meanings_and_an_example(capsys):
    assert main(["checks", "fm03.attribute_inference"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FM03.attribute_inference  Sensitive attribute inference")
    assert "sensitive_feature (str | int | None, default null)" in out
    assert "the feature to infer" in out and "attack_accuracy" in out
    assert "--set FM03.attribute_inference." in out


def test_json_and_mode_selection(capsys):
    assert main(["checks", "FM04", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in records} == {c for c in all_checks() if c.startswith("FM04.")}
    lira = next(r for r in records if r["id"] == "FM04.lira")
    assert lira["needs"]["outputs"] == "probabilities" and "auc" in lira["metrics"]
    assert {"name": "n_reference", "type": "int | str", "default": "auto"} == {k: v for k, v in lira["params"][1].items() if k != "doc"}
    assert main(["checks", "FM01.pgd", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "FM01.pgd"


def test_unknown_check_or_empty_mode_is_a_one_line_error(capsys):
    assert main(["checks", "FM01.nope"]) == 2
    assert "unknown check" in capsys.readouterr().err
    from redline.catalog import MODE_CODES
    from redline.checks import checks_by_mode

    empty = [m for m in MODE_CODES if m not in checks_by_mode() and m != "FM09"]  # shrinks as checks are added
    if not empty:
        pytest.skip("every mode has a check")
    assert main(["checks", empty[0]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and empty[0] in err and "FM01" in err  # names the modes that have checks


def test_hints_name_the_exact_flag(capsys):
    """A hint that sends the user to a knob names the flag that sets it."""
    import numpy as np
    from redline_testkit import ArrayTarget

    from redline.checks.privacy.fm03_attribute_inference import AttributeInference
    from redline.data.base import Dataset

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 5)).astype(np.float32), rng.integers(0, 3, 90)
    data = Dataset("d", x[:30], y[:30], x[30:60], y[30:60], x[60:], y[60:])
    finding = AttributeInference()(ArrayTarget(rng.normal(size=(5, 3)), np.zeros(3)), data, budget=100)
    assert "--set FM03.attribute_inference.sensitive_feature=NAME" in finding.reason
    from redline.checks.extraction.fm05_equation_solving import EquationSolvingMlp

    finding = EquationSolvingMlp()(ArrayTarget(rng.normal(size=(5, 3)), np.zeros(3)), data, budget=5000)
    assert "--set FM05.equation_solving_mlp.hidden=N" in finding.reason
    from redline.checks import Needs

    assert "--target-config" in Needs(trainable=True).unmet(ArrayTarget(rng.normal(size=(5, 3)), np.zeros(3)), data)
