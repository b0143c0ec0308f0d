"""The campaign's index: ``index.json`` (for scripts) and ``index.html`` (one row per target,
linking its report), both written atomically into --out."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ..pipeline.events import now_iso
from ..util.atomic import atomic_write_text, writing_output

INDEX_SCHEMA = "redline.campaign/1"


def index_record(result: Any, campaign: Any, jobs: list, finished: dict[str, dict[str, Any]], executor: str,
                 started_at: str) -> dict[str, Any]:
    from ..util.urls import redact_url

    targets = []
    for entry in campaign.targets:
        report = result.reports[entry.target]
        folder = next(j.target_folder for j in jobs if j.target == entry.target) if jobs else ""
        targets.append({
            "target": redact_url(entry.target),
            "data": entry.data,
            "folder": folder,
            "report": f"{folder}/report.json",
            "worst_severity": report.worst_severity.label,
            "exit_code": report.exit_code(),
            "statuses": dict(sorted(Counter(f.status.value for f in report.findings).items())),
            "findings": len(report.findings),
            "complete": report.complete,
        })
    noted = []
    for job in jobs:
        record = finished.get(job.key)
        if record and (record["notes"] or record["attempts"] > 1):
            noted.append({"key": job.key, "target": redact_url(job.target), "check": job.check, "seed": job.seed,
                          "attempts": record["attempts"], "notes": record["notes"]})
    return {
        "schema": INDEX_SCHEMA,
        "campaign": campaign.source,
        "fingerprint": campaign.fingerprint(),
        "executor": executor,
        "started_at": started_at,
        "finished_at": now_iso(),
        "complete": result.complete,
        "jobs": {"total": result.jobs_total, "finished": sum(j.key in finished for j in jobs),
                 "run": result.jobs_run, "resumed": result.jobs_resumed,
                 "retried": sum(1 for n in noted if n["attempts"] > 1)},
        "targets": targets,
        "notes": noted,
        "comparison": getattr(result, "comparison", None),  # against the previous run; None on a first run
    }


def write_index(result: Any, campaign: Any, jobs: list, finished: dict[str, dict[str, Any]], executor: str,
                started_at: str) -> None:
    record = index_record(result, campaign, jobs, finished, executor, started_at)
    for name, text in (("index.json", json.dumps(record, indent=2, sort_keys=True) + "\n"),
                       ("index.html", _html(record, result))):
        with writing_output(result.out / name):  # a full disk is an OutputError naming the file
            atomic_write_text(result.out / name, text)


def _html(record: dict[str, Any], result: Any) -> str:
    from ..report.theme import badge, e, page

    rows = []
    for target, report in zip(record["targets"], result.reports.values()):
        statuses = ", ".join(f"{n} {e(s.replace('_', ' '))}" for s, n in target["statuses"].items()) or "none"
        link = f"{target['folder']}/report.html"
        rows.append(f"<tr><td><a href='{e(link)}'>{e(target['target'])}</a></td><td>{e(target['data'] or '')}</td>"
                    f"<td>{badge(report.worst_severity)}</td><td>{statuses}</td>"
                    f"<td>{'complete' if target['complete'] else '<b>incomplete</b>'}</td></tr>")
    jobs = record["jobs"]
    summary = (f"<p>{jobs['finished']} of {jobs['total']} jobs finished ({jobs['run']} in the last run, "
               f"{jobs['resumed']} resumed from the journal, {jobs['retried']} retried) on the "
               f"<b>{e(record['executor'])}</b> executor.</p>")
    table = ("<table class='grid'><tr><th>target</th><th>data</th><th>worst severity</th><th>findings</th>"
             f"<th>state</th></tr>\n{''.join(rows)}</table>")
    notes = _comparison_html(record.get("comparison"))
    if record["notes"]:
        items = "".join(f"<li>{e(n['target'])} {e(n['check'])} seed {n['seed']}: {e('; '.join(n['notes']))}</li>"
                        for n in record["notes"])
        notes += f"<h2>Retried jobs</h2><ul>{items}</ul>"
    return page(title="redline campaign", brand="redline campaign", heading=f"campaign {record['campaign']}",
                body="\n".join((summary, table, notes)))


def _comparison_html(comparison: dict[str, Any] | None) -> str:
    from ..report.theme import e
    from .history import CHANGES, describe

    if not comparison:
        return ""
    previous = comparison["previous"]
    counts = comparison["counts"]
    link = f"{previous['folder']}/index.html"
    said = ", ".join(f"{counts[name]} {name}" for name in CHANGES)
    parts = [f"<h2>Since the previous run</h2><p>Compared with the run started {e(previous['started_at'])} "
             f"(<a href='{e(link)}'>{e(previous['folder'])}</a>): {said}; {counts['unchanged']} unchanged.</p>"]
    for name in CHANGES:
        if comparison[name]:
            items = "".join(f"<li>{e(describe(change))}</li>" for change in comparison[name])
            parts.append(f"<h3>{e(name.capitalize())}</h3><ul>{items}</ul>")
    return "\n".join(parts)
