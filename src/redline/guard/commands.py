"""``redline guard``: serve a model behind a policy's defences, or check a policy.

Only argparse is imported here; the server (FastAPI, uvicorn) loads when a handler runs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INVALID = 0, 2


def register(subparsers: Any) -> None:
    guard = subparsers.add_parser(
        "guard",
        help="serve a model endpoint behind defences (API keys, limits, detection, hardening)",
        description=(
            "Put a model endpoint behind the defences of a policy (guard.yaml). The guard answers\n"
            "POST /predict in redline's HTTP target protocol, plus GET /healthz and GET /metrics\n"
            "(Prometheus). Clients send X-API-Key: KEY or Authorization: Bearer KEY. Refusals are\n"
            'JSON {"error", "reason"}: 401 unknown key, 403 locked out (or, with the detector\'s\n'
            "refuse_flagged, this query refused as too like recent ones), 408 body too slow,\n"
            "413 body too large, 422 input rejected, 429 rate limited, 502/504 model failed.\n"
            "The policy and keys files are reloaded when they change and on SIGHUP;\n"
            "SIGTERM finishes the requests in flight, then stops."
        ),
        epilog=(
            "Examples:\n"
            "  redline guard --upstream http://127.0.0.1:8000/predict --policy guard.yaml --keys keys.txt\n"
            "  redline guard --check guard.yaml"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    guard.add_argument("--upstream", metavar="URL", help="the model endpoint (overrides upstream: in the policy)")
    guard.add_argument("--policy", metavar="FILE", type=Path, help="the guard policy (guard.yaml)")
    guard.add_argument("--keys", metavar="FILE", type=Path,
                       help="clients as name:key lines (keys are hashed when read and never kept)")
    guard.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8100",
                       help="where to listen (default: 127.0.0.1:8100)")
    guard.add_argument("--target-config", metavar="FILE", type=Path,
                       help="how to reach the model: headers, auth, input shape (as for scan)")
    guard.add_argument("--reload-interval", metavar="S", type=float, default=1.0,
                       help="seconds between looks at the policy and keys files (0: reload on SIGHUP only)")
    guard.add_argument("--workers", metavar="N", type=int, default=1,
                       help="worker processes sharing the state store and the audit log (default: 1)")
    guard.add_argument("--limit-concurrency", metavar="N", type=int, default=512,
                       help="connections served at once; more are answered 503 (default: 512)")
    guard.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    guard.add_argument("--check", metavar="FILE", type=Path,
                       help="only validate this policy: exit 0 if valid, 2 with the reason if not")
    guard.add_argument("--json", action="store_true", help="with --check: print the result as JSON")
    guard.set_defaults(handler=run_guard)


def run_guard(args: argparse.Namespace) -> int:
    if args.check is not None:
        return _check(args.check, args.json)
    from ..errors import UsageError
    from .runtime import GuardOptions
    from .server import serve

    if args.reload_interval < 0 or args.limit_concurrency < 1 or args.workers < 1:
        raise UsageError("--reload-interval must be at least 0, --limit-concurrency and --workers at least 1")
    options = GuardOptions(policy_path=args.policy, keys_path=args.keys, upstream=args.upstream,
                           target_config=args.target_config, reload_interval=args.reload_interval)
    serve(options, args.listen, workers=args.workers, limit_concurrency=args.limit_concurrency, log_level=args.log_level)
    return EXIT_OK


def _check(path: Path, as_json: bool) -> int:
    from ..errors import RedlineError
    from .check import check_policy

    try:
        summary = check_policy(path)
    except RedlineError as exc:
        from ..util.safe_text import one_line

        if as_json:
            print(json.dumps({"valid": False, "error": one_line(exc)}))
        else:
            print(f"redline: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_INVALID
    if as_json:
        print(json.dumps({"valid": True, **summary}))
    else:
        print(f"{path}: valid: {summary['clients']} client(s), defences: {', '.join(summary['defences']) or 'none'}")
        for note in summary["notes"]:
            print(f"  note: {note}")
    return EXIT_OK
