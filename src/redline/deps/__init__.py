"""Software dependencies (FM11): known vulnerabilities of a service's Python packages from OSV data.

- ``audit(packages, db)``: pinned ``{name: version}`` -> rated ``Vulnerability`` list.
- ``to_findings(vulns)``: the audit as FM11 findings for a report.
- ``from_requirements(path)`` / ``from_environment()``: what to audit.
- ``OsvDatabase.load(path)`` (offline export) and ``OsvApi()`` (online) as advisory sources.

Names are loaded on first use so that ``redline --help`` does not import the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CHECK_ID": "auditor",
    "Vulnerability": "auditor",
    "audit": "auditor",
    "to_findings": "auditor",
    "base_score": "cvss",
    "Inventory": "inputs",
    "from_environment": "inputs",
    "from_requirements": "inputs",
    "OsvApi": "osv",
    "OsvDatabase": "osv",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
