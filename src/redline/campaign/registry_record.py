"""``redline campaign … --registry DB``: the campaign's reports recorded in a failure-case
registry, and how this run compares with what the registry held."""
from __future__ import annotations

from pathlib import Path


def record_in_registry(registry, result, quiet: bool = False) -> None:
    """Add every target's report to the registry and say how this run compares with what it
    held (``quiet``: say nothing, as when stdout carries ``--json``)."""
    import os

    from ..util.safe_text import echo

    tally = {"new": 0, "seen again": 0, "fixed": 0, "regressed": 0}
    try:
        for report in result.reports.values():
            path = Path(report.out_dir or "") / "report.json"
            # From the written file when there is one, so its evidence files are kept by content.
            source = path if report.out_dir and path.is_file() else report.to_dict()
            for r in registry.add_report_results(source, os.environ.get("USER", "")):
                if r.status_change.endswith("-> fixed"):
                    tally["fixed"] += 1
                elif r.status_change.endswith("-> regressed"):
                    tally["regressed"] += 1
                else:
                    tally["new" if r.new else "seen again"] += 1
    finally:
        registry.close()
    if not quiet:
        echo(f"registry {registry.display_url}: " + ", ".join(f"{n} {what}" for what, n in tally.items()))
