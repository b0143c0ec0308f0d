"""``redline checks [CHECK] [--json]``: the registered checks, what they need, what they
report, and every parameter ``--set`` can change (type, default, meaning)."""
from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

__all__ = ["check_record", "parameter_lines", "register", "run_checks"]

WIDTH = 88

EPILOG = """\
examples:
  redline checks                     one line per check
  redline checks FM01.pgd            parameters of one check, with types and defaults
  redline checks FM04                every check of a mode
  redline checks --json              every check as JSON (for scripts)

Set a parameter on a scan with --set CHECK.PARAM=VALUE (e.g. --set FM01.pgd.epsilon=0.1)
or many at once with --checks FILE (YAML: FM01.pgd: {epsilon: 0.1, norm: l2}).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "checks",
        help="list the checks and the parameters --set can change",
        description="Show redline's checks: what each needs from a target, the metrics it reports,\n"
                    "and its parameters (type, default, meaning) for --set and --checks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("check", nargs="?", metavar="CHECK", help="a check id (FM01.pgd) or a mode code (FM01)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run_checks)


def run_checks(args: argparse.Namespace) -> int:
    from . import all_checks, plan

    classes = list(all_checks().values()) if args.check is None else plan(args.check)
    if args.check is not None and not classes:
        from ..errors import UsageError

        with_checks = sorted({c.mode for c in all_checks().values()})
        raise UsageError(f"mode {args.check.upper()} has no checks yet (modes with checks: {', '.join(with_checks)})")
    if args.json:
        records = [check_record(c) for c in classes]
        print(json.dumps(records if args.check is None or len(records) > 1 else records[0], indent=2))
        return 0
    if args.check is None:
        print(_table(classes))
        print("\n`redline checks CHECK` shows a check's parameters; set them with --set CHECK.PARAM=VALUE.")
        return 0
    print("\n\n".join(_detail(c) for c in classes))
    return 0


def check_record(cls) -> dict[str, Any]:
    """A check as JSON: id, mode, title, needs, default budget, metrics and parameters."""
    from .params import param_specs
    from ..findings import _jsonable

    needs = {k: v for k, v in _jsonable(vars(cls.needs)).items() if v not in (None, False)}
    return {
        "id": cls.id, "mode": cls.mode, "title": cls.title, "needs": needs,
        "default_budget": cls.default_budget, "metrics": list(cls.metrics),
        "params": [p.to_dict() for p in param_specs(cls)],
    }


def _default_text(value: Any) -> str:
    from ..findings import _jsonable

    return json.dumps(_jsonable(value))


def parameter_lines(cls, indent: str = "  ") -> list[str]:
    """One block per parameter: ``name (type, default X)`` then its meaning, wrapped."""
    from .params import param_specs

    lines: list[str] = []
    for p in param_specs(cls):
        lines.append(f"{indent}{p.name} ({p.type or 'any'}, default {_default_text(p.default)})")
        lines.extend(textwrap.wrap(p.doc or "(undocumented)", WIDTH, initial_indent=indent + "    ",
                                   subsequent_indent=indent + "    ", break_on_hyphens=False))
    return lines


def _needs_text(cls) -> str:
    record = check_record(cls)["needs"]
    parts = []
    if record.get("outputs"):
        parts.append(record["outputs"])
    if record.get("gradients"):
        parts.append("gradients")
    if record.get("trainable"):
        parts.append("a training recipe")
    if record.get("modality"):
        parts.append("/".join(record["modality"]) + " data")
    if record.get("task") and record["task"] != "classification":
        parts.append(record["task"])
    return ", ".join(parts) or "labels"


def _table(classes) -> str:
    rows = [("CHECK", "NEEDS", "BUDGET", "TITLE")]
    rows += [(c.id, _needs_text(c), f"{c.default_budget:,}", c.title) for c in classes]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(r[:3], widths)), r[3]]).rstrip() for r in rows)


def _detail(cls) -> str:
    from .params import param_specs

    specs = param_specs(cls)
    out = [f"{cls.id}  {cls.title}",
           f"  mode {cls.mode}; needs {_needs_text(cls)}; default budget {cls.default_budget:,} queries",
           "", "Parameters"]
    out += parameter_lines(cls) if specs else ["  none"]
    out += ["", "Metrics", *textwrap.wrap(", ".join(cls.metrics) or "none declared", WIDTH,
                                         initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)]
    if specs:
        example = specs[0]
        out += ["", f"  e.g. redline scan TARGET --select {cls.id} --set {cls.id}.{example.name}="
                    f"{_example_value(example)}"]
    return "\n".join(out)


def _example_value(spec) -> str:
    if spec.default is not None and not isinstance(spec.default, (dict, list, tuple)):
        return json.dumps(spec.default) if isinstance(spec.default, bool) else str(spec.default)
    return "VALUE"
