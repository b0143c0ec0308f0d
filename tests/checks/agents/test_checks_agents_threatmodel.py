"""A system description of an agent gets FM12 and FM13 with the checks to run and a note that
they run the policy in its environment."""
from __future__ import annotations

from pathlib import Path

from redline.threatmodel.assess import build_threat_model

ROBOT = Path(__file__).resolve().parents[3] / "examples" / "cleaning-robot.system.yaml"


def test_an_agent_system_lists_the_agent_checks_with_the_environment_they_need():
    model = build_threat_model(ROBOT)
    for code, check in (("FM12", "FM12.reward_gaming"), ("FM13", "FM13.side_effects")):
        coverage = model[code].coverage
        assert coverage.status == "checks"
        (ref,) = [r for r in coverage.checks if r.id == check]
        assert "--select" in ref.command and "--data env:ID" in ref.note
