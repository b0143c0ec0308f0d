"""The campaign file: which targets, checks, seeds and parameters make up a campaign.

```yaml
targets: [zoo:fair_logreg, {target: http://host/model, data: builtin:fair, target_config: api.yaml}]
data: builtin:fair     # for targets that name none (zoo targets bring their own)
select: FM05,FM04      # as --select; a list of codes works too
budget: 2000           # as --budget (default: each check's own)
seeds: [0, 1, 2]       # default [0]
params: {FM01.pgd: {epsilon: 0.1}}
```
Paths (model files, data files, target configs) are read as on the command line: relative to
the folder the campaign is started from. Every problem is a one-line UsageError that names
the key and the value at fault, raised before any model or data is loaded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError

TOP_KEYS = ("targets", "data", "select", "budget", "seeds", "params")
TARGET_KEYS = ("target", "data", "target_config")


@dataclasses.dataclass(frozen=True)
class TargetEntry:
    """One target of a campaign, with the data and target config its jobs use."""

    target: str
    data: str | None = None
    target_config: str | None = None


@dataclasses.dataclass(frozen=True)
class Campaign:
    source: str
    targets: tuple[TargetEntry, ...]
    select: str | None
    budget: int | None
    seeds: tuple[int, ...]
    params: dict[str, dict[str, Any]]

    def fingerprint(self) -> str:
        """Everything that decides the campaign's results; --resume refuses another campaign's folder."""
        blob = json.dumps({"targets": [dataclasses.asdict(t) for t in self.targets], "select": self.select,
                           "budget": self.budget, "seeds": list(self.seeds), "params": self.params},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_campaign(path: str | Path) -> Campaign:
    """Read and validate a campaign file."""
    from ..util.safe_yaml import read_yaml_mapping

    path = Path(path)
    return parse_campaign(read_yaml_mapping(path, "campaign file"), source=str(path))


def parse_campaign(raw: Mapping[str, Any], source: str = "campaign") -> Campaign:
    """Validate the mapping of a campaign file (see the module docstring for its keys)."""
    def fail(key: str, problem: str) -> UsageError:
        return UsageError(f"{source}: {key}: {problem}")

    if not isinstance(raw, Mapping):
        raise UsageError(f"{source}: a campaign must be a mapping of keys ({', '.join(TOP_KEYS)})")
    unknown = [str(k) for k in raw if k not in TOP_KEYS]
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(TOP_KEYS)})")
    default_data = _optional_text(raw.get("data"), "data", fail)
    targets = _targets(raw.get("targets"), default_data, fail)
    select = _select(raw.get("select"), fail)
    budget = raw.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
        raise fail("budget", f"must be a positive whole number, not {budget!r}")
    seeds = _seeds(raw.get("seeds", [0]), fail)
    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise fail("params", f"must map check ids to parameters ({{FM01.pgd: {{epsilon: 0.1}}}}), not {params!r}")
    from ..checks import plan
    from ..checks.params import normalise_params, resolve_checks

    try:
        checks = plan(select)
    except UsageError as exc:
        raise fail("select", str(exc)) from None
    try:
        normalised = normalise_params(params)
        resolve_checks(checks, normalised)  # unknown parameters, bad values, checks not selected
    except UsageError as exc:
        raise fail("params", str(exc)) from None
    return Campaign(source=source, targets=targets, select=select, budget=budget, seeds=seeds, params=normalised)


def _optional_text(value: Any, key: str, fail) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(key, f"must be a non-empty string, not {value!r}")
    return value.strip()


def _targets(value: Any, default_data: str | None, fail) -> tuple[TargetEntry, ...]:
    if value is None:
        raise fail("targets", "is required: a list of target specs or of {target, data, target_config}")
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail("targets", f"must be a non-empty list, not {value!r}")
    entries: list[TargetEntry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        key = f"targets[{i}]"
        if isinstance(item, str):
            entry = TargetEntry(_optional_text(item, key, fail), default_data)
        elif isinstance(item, Mapping):
            unknown = [str(k) for k in item if k not in TARGET_KEYS]
            if unknown:
                raise fail(f"{key}.{unknown[0]}", f"unknown key (known: {', '.join(TARGET_KEYS)})")
            if "target" not in item:
                raise fail(f"{key}.target", "is required")
            entry = TargetEntry(
                target=_optional_text(item["target"], f"{key}.target", fail),
                data=_optional_text(item.get("data"), f"{key}.data", fail) or default_data,
                target_config=_optional_text(item.get("target_config"), f"{key}.target_config", fail),
            )
            if entry.target_config is not None and not Path(entry.target_config).is_file():
                raise fail(f"{key}.target_config", f"file not found: {entry.target_config}")
        else:
            raise fail(key, f"must be a target spec or a mapping with 'target', not {item!r}")
        # A job's key (its finding id) names the target, not the data: the same target twice
        # would give two jobs one key.
        if entry.target in seen:
            raise fail(key, f"{entry.target} is already targets[{seen[entry.target]}]; list each target once")
        seen[entry.target] = i
        entries.append(entry)
    return tuple(entries)


def _select(value: Any, fail) -> str | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str) or not value.strip():
        raise fail("select", f"must be mode codes or check ids (FM05,FM04.lira), not {value!r}")
    return value.strip()


def _seeds(value: Any, fail) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise fail("seeds", f"must be a non-empty list of whole numbers, not {value!r}")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise fail("seeds", f"must be whole numbers >= 0, not {seed!r}")
    if len(set(value)) != len(value):
        raise fail("seeds", f"lists a seed twice: {value!r}")
    return tuple(value)
