"""Fixtures for the threat-model tests: the shipped examples and a fixed check registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from redline.checks.base import Needs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def example_doc():
    """Load an example system description as a dict, to derive variants from it."""

    def load(name: str) -> dict:
        return yaml.safe_load((EXAMPLES / f"{name}.system.yaml").read_text(encoding="utf-8"))

    return load


class _FakeCheck:
    def __init__(self, check_id: str, needs: Needs):
        self.id, self.mode, self.title, self.needs = check_id, check_id.split(".")[0], f"fake {check_id}", needs


@pytest.fixture
def fixed_registry(monkeypatch):
    """Coverage must not depend on which checks colleagues have registered so far."""
    registry = {
        "FM01": [_FakeCheck("FM01.pgd", Needs(gradients=True))],
        "FM05": [_FakeCheck("FM05.equation_solving", Needs(outputs="probabilities"))],
    }
    monkeypatch.setattr("redline.threatmodel.assess.checks_by_mode", lambda: registry)
    return registry
