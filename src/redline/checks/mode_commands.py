"""``redline modes [CODE] [--json]``: show the failure-mode catalog."""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..catalog import get_mode, load_modes, mode_to_dict

__all__ = ["checks_by_mode", "register", "run_modes"]

EPILOG = """\
examples:
  redline modes              table of all 17 failure modes
  redline modes FM04         full record of membership inference
  redline modes --json       every record as JSON (for scripts)
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "modes",
        help="list the failure modes (FM01..FM17) and their bug-bar ranges",
        description="Show the failure-mode catalog: what each mode compromises, how the\n"
        "bug bar rates it, which checks test it, and how to mitigate it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("code", nargs="?", metavar="CODE", help="one mode code, e.g. FM04 (any case)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run_modes)


def run_modes(args: argparse.Namespace) -> int:
    from ..catalog.render import render_record, render_table

    checks = checks_by_mode()
    if args.code is not None:
        mode = get_mode(args.code)
        mode_checks = checks.get(mode.code, [])
        if args.json:
            print(json.dumps({**mode_to_dict(mode), "checks": mode_checks,
                              "check_params": _check_params(mode_checks)}, indent=2, ensure_ascii=False))
        else:
            print(render_record(mode, mode_checks, _check_details(mode_checks)))
        return 0
    modes = load_modes()
    if args.json:
        records = [{**mode_to_dict(m), "checks": checks.get(m.code, [])} for m in modes]
        print(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        print(render_table(modes, checks))
    return 0


def _check_details(check_ids: list[str]) -> dict[str, list[str]]:
    """Each check's title and parameters (type, default, meaning), for ``modes CODE``."""
    from .commands import parameter_lines

    return {check_id: [f"    {cls.title}", *parameter_lines(cls, indent="      ")]
            for check_id, cls in _check_classes(check_ids).items()}


def _check_params(check_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    from .params import param_specs

    return {check_id: [p.to_dict() for p in param_specs(cls)] for check_id, cls in _check_classes(check_ids).items()}


def _check_classes(check_ids: list[str]) -> dict[str, type]:
    from . import Check, all_checks

    registry = all_checks()
    return {c: registry[c] for c in check_ids
            if isinstance(registry.get(c), type) and issubclass(registry[c], Check)}


def checks_by_mode() -> dict[str, list[str]]:
    """Check ids per mode code from the check registry."""
    from . import STATIC_SCAN_CHECK, STATIC_SCAN_MODE
    from . import checks_by_mode as classes_by_mode

    grouped = {mode: [cls.id for cls in classes] for mode, classes in classes_by_mode().items()}
    # The static model-file scan is no registered check (it runs before a model file is
    # loaded), but it is what tests FM09 in every scan of a file, so it is listed there.
    if STATIC_SCAN_CHECK not in grouped.get(STATIC_SCAN_MODE, []):
        grouped.setdefault(STATIC_SCAN_MODE, []).append(STATIC_SCAN_CHECK)
    return grouped
