"""Campaigns: many scans (targets x checks x seeds) as independent, resumable jobs on an
executor (local processes by default, Ray for a cluster).

One job is one (target, check, seed); its key is the id of the finding it produces, and a
SQLite journal in --out records each finished job, so ``--resume`` after any interruption
runs only the jobs not recorded. Each job runs the scan pipeline with that one check; the
driver writes one report per target and an index. Names load lazily so the CLI starts fast.
"""
from typing import Any

__all__ = ["Campaign", "CampaignResult", "load_campaign", "parse_campaign", "run_campaign"]

_WHERE = {"Campaign": "spec", "load_campaign": "spec", "parse_campaign": "spec",
          "CampaignResult": "driver", "run_campaign": "driver"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'redline.campaign' has no attribute {name!r}")
