"""The campaign file: every key validated with a one-line error naming it; jobs expand as a product."""
from __future__ import annotations

from pathlib import Path

import pytest

from redline.campaign.jobs import expand
from redline.campaign.spec import load_campaign, parse_campaign
from redline.errors import UsageError
from redline.findings import finding_id

BASE = {"targets": ["zoo:fair_logreg"], "select": "FM05.equation_solving", "budget": 500, "seeds": [0, 1]}


def _bad(change: dict, *drop: str) -> str:
    raw = {k: v for k, v in {**BASE, **change}.items() if k not in drop}
    with pytest.raises(UsageError) as err:
        parse_campaign(raw, source="c.yaml")
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("change, drop, words", [
    ({"target": "zoo:x"}, (), "c.yaml: target: unknown key"),
    ({}, ("targets",), "targets: is required"),
    ({"targets": []}, (), "targets: must be a non-empty list"),
    ({"targets": [{"data": "builtin:fair"}]}, (), "targets[0].target: is required"),
    ({"targets": [{"target": "zoo:fair_logreg", "datta": "x"}]}, (), "targets[0].datta: unknown key"),
    ({"targets": [3]}, (), "targets[0]: must be a target spec"),
    ({"targets": ["zoo:fair_tree", "zoo:fair_tree"]}, (), "targets[1]: zoo:fair_tree is already targets[0]"),
    ({"targets": [{"target": "zoo:fair_tree", "target_config": "nowhere.yaml"}]}, (), "targets[0].target_config: file not found"),
    ({"budget": 0}, (), "budget: must be a positive whole number"),
    ({"budget": "lots"}, (), "budget: must be a positive whole number"),
    ({"seeds": [0, "one"]}, (), "seeds: must be whole numbers"),
    ({"seeds": [1, 1]}, (), "seeds: lists a seed twice"),
    ({"seeds": []}, (), "seeds: must be a non-empty list"),
    ({"select": "FM99"}, (), "select: --select takes mode codes"),
    ({"select": "FM05.nope"}, (), "select: unknown check 'FM05.nope'"),
    ({"params": {"FM01.pgd": {"epsilon": 0.1}}}, (), "params: parameters given for FM01.pgd"),
    ({"params": {"FM05.equation_solving": {"nope": 1}}}, (), "params: FM05.equation_solving has no parameter 'nope'"),
    ({"params": [1]}, (), "params: must map check ids"),
    ({"data": 5}, (), "data: must be a non-empty string"),
])
def test_a_bad_campaign_is_one_line_naming_the_key(change, drop, words):
    assert words in _bad(change, *drop)


def test_targets_as_strings_or_mappings_take_the_default_data(tmp_path):
    config = tmp_path / "api.yaml"
    config.write_text("timeout: 5\n")
    campaign = parse_campaign({
        "targets": ["zoo:fair_logreg", {"target": "http://127.0.0.1:9/m", "target_config": str(config)},
                    {"target": "zoo:fair_tree", "data": "builtin:breast_cancer"}],
        "data": "builtin:fair", "select": ["FM05.equation_solving", "FM11"], "seeds": 3,
    })
    assert [(t.target, t.data, t.target_config) for t in campaign.targets] == [
        ("zoo:fair_logreg", "builtin:fair", None), ("http://127.0.0.1:9/m", "builtin:fair", str(config)),
        ("zoo:fair_tree", "builtin:breast_cancer", None)]
    assert campaign.select == "FM05.equation_solving,FM11" and campaign.seeds == (3,) and campaign.budget is None


def test_jobs_are_the_product_of_targets_checks_and_seeds_keyed_by_finding_id(tmp_path):
    campaign = parse_campaign({**BASE, "targets": ["zoo:fair_logreg", "zoo:fair_tree"],
                               "select": "FM05.equation_solving,FM05.path_finding",
                               "params": {"FM05.path_finding": {"n_uniform": 200}}})
    jobs = expand(campaign, tmp_path)
    assert len(jobs) == 2 * 2 * 2
    assert len({j.key for j in jobs}) == 8
    assert [(j.target, j.check, j.seed) for j in jobs[:4]] == [
        ("zoo:fair_logreg", "FM05.equation_solving", 0), ("zoo:fair_logreg", "FM05.equation_solving", 1),
        ("zoo:fair_logreg", "FM05.path_finding", 0), ("zoo:fair_logreg", "FM05.path_finding", 1)]
    from redline.checks import get_check
    from redline.checks.params import instantiate

    path_finding = instantiate(get_check("FM05.path_finding"), {"n_uniform": 200})
    assert jobs[2].key == finding_id("FM05.path_finding", "zoo:fair_logreg", path_finding.get_params(), 0, 500)
    assert jobs[2].params == {"n_uniform": 200} and jobs[0].params is None
    assert Path(jobs[0].folder) == (tmp_path / "zoo_fair_logreg" / "jobs" / jobs[0].key).resolve()


def test_the_example_campaign_is_valid():
    example = Path(__file__).resolve().parents[2] / "examples" / "fair.campaign.yaml"
    campaign = load_campaign(example)
    assert len(campaign.targets) == 2 and campaign.seeds == (0, 1)


def test_a_missing_or_non_mapping_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_campaign(tmp_path / "none.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- zoo:fair_logreg\n")
    with pytest.raises(UsageError, match="must hold a mapping"):
        load_campaign(listed)


def test_urls_a_query_value_apart_are_two_targets_and_targets_that_would_share_jobs_are_refused(tmp_path, monkeypatch):
    # Both are shown http://127.0.0.1:9/m?model=REDACTED; their jobs must still be two.
    targets = ["http://127.0.0.1:9/m?model=v1", "http://127.0.0.1:9/m?model=broken", "http://127.0.0.1:9/m"]
    campaign = parse_campaign({**BASE, "targets": targets, "seeds": [0]})
    jobs = expand(campaign, tmp_path)
    assert len({j.key for j in jobs}) == 3 and len({j.target_folder for j in jobs}) == 3
    # A URL shown as given keeps the key it always had.
    from redline.checks import get_check
    from redline.checks.params import instantiate

    params = instantiate(get_check("FM05.equation_solving"), None).get_params()
    assert jobs[2].key == finding_id("FM05.equation_solving", "http://127.0.0.1:9/m", params, 0, 500)
    # Targets that would still share a job key or a report folder: one line naming both.
    import redline.campaign.jobs as job_module

    monkeypatch.setattr(job_module, "target_digest", lambda spec: None)
    with pytest.raises(UsageError) as err:
        expand(parse_campaign({**BASE, "targets": targets[:2]}, source="c.yaml"), tmp_path)
    message = str(err.value)
    assert "\n" not in message and "v1" not in message and "broken" not in message
    assert message.startswith("c.yaml: targets[1] (http://127.0.0.1:9/m?model=REDACTED) and targets[0] "
                              "(http://127.0.0.1:9/m?model=REDACTED) would share the job key")
    monkeypatch.setattr(job_module, "target_folders", lambda entries: {e.target: "same" for e in entries})
    with pytest.raises(UsageError, match=r"targets\[1\] .* and targets\[0\] .* would share the report folder"):
        expand(parse_campaign({**BASE, "targets": ["zoo:fair_logreg", "zoo:fair_tree"]}), tmp_path)
