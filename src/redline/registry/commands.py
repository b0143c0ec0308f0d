"""``redline registry …``: record, find, follow, replay and exchange failure cases; and the
``--registry DB`` option of ``redline scan`` (added here, the layer above the pipeline)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError

EXPORT_FORMATS = ("json", "avid", "atlas", "md")
_DB_HELP = ("registry database: sqlite:///PATH or postgresql://USER@HOST:PORT/DB, or a bare file name "
            "(default $REDLINE_REGISTRY, else sqlite:///redline-registry.db)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "registry",
        help="the failure-case registry: record, search, replay and exchange ML failures",
        description="A shared database of failure cases from scans, triaged incidents and imported reports.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  redline registry add out/report.json --db sqlite:///cases.db\n"
            "  redline registry search 'membership' --mode FM04 --severity important --json\n"
            "  redline registry replay 3840bf512865 --target onnx:new-model.onnx\n"
            "  redline scan zoo:fair_logreg --registry sqlite:///cases.db\n"
            "\nexit codes: 0 done, 2 usage or input error (unknown id, bad URL, missing database);\n"
            "replay: 0 fixed, 1 still failing or regressed, 3 the replay could not decide."
        ),
    )
    cmds = p.add_subparsers(dest="registry_command", metavar="COMMAND", parser_class=type(p))
    p.set_defaults(handler=lambda args: _usage(p))

    def command(name: str, help_text: str, example: str, handler) -> argparse.ArgumentParser:
        c = cmds.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=f"example:\n  {example}")
        c.add_argument("--db", metavar="URL", help=_DB_HELP)
        c.set_defaults(handler=handler)
        return c

    c = command("add", "record scan reports (report.json) and incidents (incident YAML, triaged on the way)",
                "redline registry add out/report.json examples/stolen-model.incident.yaml", add_command)
    c.add_argument("files", metavar="REPORT.json|INCIDENT.yaml", nargs="+")
    c.add_argument("--by", metavar="NAME", default="", help="who adds them (default: $USER)")
    c.add_argument("--system", metavar="NAME", default="", help="the system the report's target belongs to")
    c.add_argument("--json", action="store_true", help="print what was recorded as JSON")

    for name, example in (("list", "redline registry list --status open --severity critical,important"),
                          ("search", "redline registry search 'stolen copy' --mode FM05 --json")):
        c = command(name, "list recorded cases, newest first" if name == "list"
                    else "find cases by words (title, summary, check, system, target…) and filters", example, list_command)
        if name == "search":
            c.add_argument("query", metavar="WORDS", help="every word must match (a word matches as a prefix)")
        c.add_argument("--mode", metavar="CODES", help="FM codes, comma-separated")
        c.add_argument("--severity", metavar="LEVELS", help="critical, important, moderate, low, none (comma-separated)")
        c.add_argument("--system", metavar="NAME", help="the affected system")
        c.add_argument("--status", metavar="STATUS", help="open, fixed, regressed, wont-fix (comma-separated)")
        c.add_argument("--limit", metavar="N", type=_whole_number(1, MAX_LIMIT), default=50,
                       help=f"cases per page, 1 to {MAX_LIMIT:,} (default 50)")
        c.add_argument("--offset", metavar="N", type=_whole_number(0, MAX_OFFSET), default=0,
                       help="cases to skip (default 0)")
        c.add_argument("--json", action="store_true", help="print {total, cases: [...]} as JSON")

    c = command("show", "show one case with its observations, replays, links and history",
                "redline registry show 3840bf512865", show_command)
    c.add_argument("id", metavar="ID", help="a case id (or a unique prefix of 6+ characters, or a finding id)")
    c.add_argument("--json", action="store_true", help="print the case and its history as JSON")

    c = command("update", "change a case's status", "redline registry update 3840bf512865 --status wont-fix",
                update_command)
    c.add_argument("id", metavar="ID")
    c.add_argument("--status", required=True, metavar="STATUS", help="open, fixed, regressed or wont-fix")
    c.add_argument("--note", default="", help="why (kept in the case's history)")
    c.add_argument("--by", metavar="NAME", default="")

    c = command("replay", "re-run a case's finding as a regression test and record fixed or regressed",
                "redline registry replay 3840bf512865 --target zoo:fair_logreg_labels", replay_command)
    c.add_argument("id", metavar="ID")
    c.add_argument("--target", metavar="TARGET", help="the target to test instead of the recorded one (e.g. the new model)")
    c.add_argument("--data", metavar="DATA", help="data spec instead of the recorded one")
    c.add_argument("--target-config", metavar="FILE", help="target config (YAML)")
    c.add_argument("--by", metavar="NAME", default="")
    c.add_argument("--json", action="store_true")

    c = command("export", "write a case as JSON, an AVID report, an ATLAS case study or Markdown",
                "redline registry export 3840bf512865 --format avid --out case.avid.json", export_command)
    c.add_argument("id", metavar="ID")
    c.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    c.add_argument("--out", metavar="FILE", help="write here instead of standard output")

    c = command("import", "record cases from AVID reports, ATLAS case studies or exported JSON files",
                "redline registry import avid-report.json", import_command)
    c.add_argument("files", metavar="FILE", nargs="+")
    c.add_argument("--by", metavar="NAME", default="")

    c = command("link", "link two cases (e.g. the same weakness in two systems)",
                "redline registry link 3840bf512865 86f8aa31e1e3 --relation related", link_command)
    c.add_argument("id", metavar="ID")
    c.add_argument("other", metavar="OTHER_ID")
    c.add_argument("--relation", default="related", help="related (default), duplicate-of, caused-by…")

    c = command("serve", "serve the registry's web pages", "redline registry serve --listen 127.0.0.1:8080",
                serve_command)
    c.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8080")
    c.add_argument("--token-file", metavar="FILE", help="tokens allowed to write (one per line)")

    _add_scan_option(sub)


MAX_LIMIT = 100_000
MAX_OFFSET = 10**12  # far past any registry's size; a larger one would overflow the database's 64-bit offset


def _whole_number(low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high`` (a usage error, exit 2, otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high:,}")
        return value

    return parse


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _open(args: argparse.Namespace, *, create: bool = False):
    from .store import Registry

    return Registry(args.db, create=create)


def _who(args: argparse.Namespace) -> str:
    return getattr(args, "by", "") or os.environ.get("USER", "")


def _echo(text: str) -> None:
    from ..util.safe_text import echo

    echo(text)


def _line(case: Any) -> str:
    status = case.status.value if hasattr(case.status, "value") else case.status
    return f"{case.id}  {case.mode}  {case.severity:<9}  {status:<9}  {case.title}"


# -- commands ----------------------------------------------------------------------------------

def add_command(args: argparse.Namespace) -> int:
    paths = [Path(f) for f in args.files]
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path} does not exist or is not a file")
        if path.suffix.lower() not in (".json", ".yaml", ".yml"):
            raise UsageError(f"{path}: give a report.json or an incident .yaml")
    printed: list[dict[str, Any]] = []
    with _open(args, create=True) as registry:
        for path in paths:
            if path.suffix.lower() == ".json":
                for r in registry.add_report_results(path, _who(args), system=args.system):
                    printed.append({"file": str(path), "case": r.id, "new": r.new, "matched_by": r.matched_by,
                                    "similarity": r.similarity, "status_change": r.status_change})
            else:
                added = registry.add_incident(path, _who(args))
                entry = {"file": str(path), "incident": added.incident_id, "incident_new": added.new,
                         "severity": added.severity}
                if added.case is not None:
                    entry.update(case=added.case.id, new=added.case.new, matched_by=added.case.matched_by,
                                 similarity=added.case.similarity, status_change=added.case.status_change)
                printed.append(entry)
        db = registry.display_url
    if args.json:
        _echo(json.dumps({"registry": db, "recorded": printed}, indent=2))
        return 0
    for e in printed:
        if "incident" in e and "case" not in e:
            _echo(f"{e['file']}: incident {e['incident']} recorded; triage matched no failure mode, so no case")
            continue
        if e["new"]:
            what = "new case"
        elif e["matched_by"] == "content":
            what = f"seen again (near-identical, similarity {e['similarity']:.2f})"
        else:
            what = "seen again (same finding id)"
        change = f"; status {e['status_change']}" if e.get("status_change") else ""
        _echo(f"{e['file']}: {e['case']} {what}{change}")
    if not printed:
        _echo("no vulnerable findings: nothing to record")
    _echo(f"registry: {db}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        page = registry.search(getattr(args, "query", "") or "", mode=args.mode, severity=args.severity,
                               system=args.system, status=args.status, limit=args.limit, offset=args.offset)
    if args.json:
        _echo(json.dumps({"total": page.total, "limit": page.limit, "offset": page.offset,
                          "cases": [c.to_dict() for c in page.cases]}, indent=2))
        return 0
    for case in page.cases:
        _echo(_line(case))
    shown = f"{page.offset + 1}-{page.offset + len(page.cases)} of " if page.cases else ""
    _echo(f"{shown}{page.total} case{'s' if page.total != 1 else ''}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        case = registry.get(args.id)
        detail = {"observations": registry.observations(case.id), "replays": registry.replays(case.id),
                  "links": registry.links(case.id), "history": registry.history(case.id)}
    if args.json:
        _echo(json.dumps({"case": case.to_dict(), **detail}, indent=2, default=str))
        return 0
    lines = [_line(case), ""]
    for label, value in (("source", case.source), ("system", case.system), ("target", case.target),
                         ("data", case.data), ("check", case.check), ("finding", case.finding_id),
                         ("seed / budget", f"{case.seed} / {case.budget}" if case.check else ""),
                         ("params", json.dumps(case.params) if case.params else ""),
                         ("ATLAS", ", ".join(case.atlas)), ("AVID", ", ".join(case.avid)),
                         ("added", f"{case.created_at} by {case.added_by or '?'}"), ("updated", case.updated_at)):
        if value:
            lines.append(f"  {label:<14} {value}")
    for label, text in (("summary", case.summary), ("rationale", case.rationale)):
        if text:
            lines += ["", f"  {label}: {text}"]
    if case.metrics:
        lines += ["", "  metrics: " + ", ".join(f"{k}={_short(v)}" for k, v in case.metrics.items())]
    if case.artifacts:
        lines += ["", "  artifacts: " + ", ".join(f"{n} (sha256 {s[:12]})" for n, s in case.artifacts.items())]
    if case.check and case.target:
        lines += ["", f"  reproduce: redline registry replay {case.id}"]
    lines += ["", f"  observations: {len(detail['observations'])}"]
    for r in detail["replays"]:
        lines.append(f"  replay {r['at']}: {r['outcome']} on {r['target']} ({r['replayed_status']})")
    for link in detail["links"]:
        lines.append(f"  link: {link['relation']} {link['direction']} {link['kind']} {link['id']}")
    for h in detail["history"]:
        if h["event"] == "status":
            lines.append(f"  {h['at']}: status {h['detail'].get('from')} -> {h['detail'].get('to')} {h['detail'].get('note', '')}")
    _echo("\n".join(lines))
    return 0


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else f"{value:.4g}"
    return text if len(text) <= 40 else text[:39] + "…"


def update_command(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        case = registry.update_status(args.id, args.status, by=_who(args), note=args.note)
    _echo(_line(case))
    return 0


def replay_command(args: argparse.Namespace) -> int:
    from .replay import replay_case

    with _open(args) as registry:
        result = replay_case(registry, args.id, target=args.target, data=args.data,
                             target_config=args.target_config, by=_who(args))
    if args.json:
        _echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _echo(f"replay of case {result.case_id} on {result.target}: {result.outcome} "
              f"(replayed verdict {result.replayed_status})" + (f"; {result.reason}" if result.reason else ""))
    return {"fixed": 0, "still-failing": 1, "regressed": 1}.get(result.outcome, 3)


def export_command(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        case = registry.get(args.id)
    from .exchange import export_case

    text = export_case(case, args.format)
    if args.out:
        from ..util.atomic import atomic_write_text

        atomic_write_text(Path(args.out), text if text.endswith("\n") else text + "\n")
        _echo(f"wrote {args.out}")
    else:
        _echo(text)
    return 0


def import_command(args: argparse.Namespace) -> int:

    batches = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"{path} does not exist or is not a file")
        batches.append((path, _read_cases(path)))
    with _open(args, create=True) as registry:
        for path, cases in batches:
            results = registry.add_cases(cases, added_by=_who(args), source=str(path))
            new = sum(r.new for r in results)
            _echo(f"{path}: {len(results)} case{'s' if len(results) != 1 else ''} ({new} new, "
                  f"{len(results) - new} seen before): {', '.join(r.id for r in results)}")
    return 0


def _read_cases(path: Path) -> list:
    """Cases from a file (redline case JSON, AVID reports, ATLAS case studies), with the
    exchange module's limits on size and nesting; the importing registry gives its own ids."""
    from .exchange import import_file

    return [_fresh(c) for c in import_file(path)]


def _fresh(case):
    import dataclasses

    return dataclasses.replace(case, id="", created_at="", updated_at="")


def link_command(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        registry.link(args.id, args.other, args.relation)
    _echo(f"linked {args.id} {args.relation} {args.other}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from . import web

    return int(web.serve_command(args) or 0)


# -- redline scan --registry -------------------------------------------------------------------

def _add_scan_option(sub: argparse._SubParsersAction) -> None:
    """``redline scan … --registry DB``: each finding is recorded as soon as its check finishes."""
    scan = sub.choices.get("scan")
    if scan is None:
        return
    scan.add_argument("--registry", metavar="DB", help="record findings in this failure-case registry as they are "
                      "produced (sqlite:///PATH, postgresql://…, or a file name)")
    scan.set_defaults(handler=scan_with_registry)


def scan_with_registry(args: argparse.Namespace) -> int:
    from ..pipeline.commands import scan_command

    if not getattr(args, "registry", None):
        return scan_command(args)
    from .store import Registry

    registry = Registry(args.registry, create=True)  # a bad URL is refused before the scan starts
    recorded: list[Any] = []
    who = os.environ.get("USER", "")

    def record(finding: Any, target_spec: str, data_spec: str) -> None:
        result = registry.add_finding(finding.to_dict(), target=target_spec, data=data_spec, added_by=who,
                                      source=f"scan {args.out}")
        if result is not None:
            recorded.append(result)

    try:
        code = scan_command(args, on_finding=record)
    finally:
        registry.close()
    if recorded:
        import sys

        new = sum(r.new for r in recorded)
        changed = sum(bool(r.status_change) for r in recorded)
        line = (f"registry {registry.display_url}: {new} new case{'s' if new != 1 else ''}, "
                f"{len(recorded) - new} seen before{f', {changed} changed status' if changed else ''}")
        if args.json:  # standard output is the report alone
            print(line, file=sys.stderr)
        else:
            _echo(line)
    return code
