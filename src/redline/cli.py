"""The ``redline`` command: a thin layer over the Python API.

Each command group lives next to the code it drives, in a ``commands`` module that
registers its sub-parser; this file only wires them together and maps errors to exit
codes (0 nothing reached --fail-on, 1 a finding did or a file is unsafe, 2 usage/input error,
3 the scan could not test what was asked: a check ended in error, or none reached a verdict).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from . import __version__
from .errors import OutputError, RedlineError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_UNTESTED = 0, 1, 2, 3

# Modules with a ``register(subparsers)`` function; they must import only light modules.
COMMAND_MODULES = (
    "redline.checks.mode_commands",
    "redline.checks.commands",
    "redline.pipeline.commands",
    "redline.demo",
    "redline.registry.commands",  # after the pipeline's: it adds --registry to `redline scan`
    "redline.campaign.commands",
    "redline.filescan.commands",
    "redline.provenance.commands",
    "redline.deps.commands",
    "redline.threatmodel.commands",
    "redline.guard.commands",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 already; keep it to one line
        from .util.safe_text import one_line

        # The line that matters, and where to read more; the full usage would bury it.
        print(f"redline: error: {one_line(message)} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="redline",
        description="Find, rate and guard against the failure modes of machine-learning systems.",
        # Raw text, so the example command is never wrapped in the middle.
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  redline scan zoo:mnist_cnn --select FM01 --out out/ --format json,html",
    )
    parser.add_argument("--version", action="version", version=f"redline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


#: Commands whose work is saved on Ctrl-C, so SIGTERM is handled the same way; servers
#: (guard, registry serve) keep their own graceful shutdown on SIGTERM.
INTERRUPTIBLE_COMMANDS = frozenset({"scan", "campaign", "demo", "replay"})


def terminate_as_interrupt() -> None:
    """Handle SIGTERM (a CI job's time limit, ``kill``, a container stopping) as Ctrl-C: a
    scan writes the report of the checks that finished and the --resume command instead of
    dying with nothing written. Once only: a second SIGTERM ends the process at once.
    Processes forked from this one (campaign workers) keep the default, so their parent
    still sees them killed by a signal; servers install their own handlers over this one."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return  # someone who embeds redline chose their own
    owner = os.getpid()

    def interrupt(signum, frame):  # noqa: ARG001
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if os.getpid() != owner:  # a forked child: die by the signal, as it would have
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the words as given, e.g. for the --resume hint after an interruption
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command in INTERRUPTIBLE_COMMANDS:
        terminate_as_interrupt()
    try:
        return int(handler(args) or 0)
    except RedlineError as exc:
        from .util.safe_text import one_line

        # messages quote files, endpoints and YAML values: no control or bidi character gets through
        print(f"redline: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        from .util.extras import missing_package_message

        message = missing_package_message(exc)  # an optional package: say which extra installs it
        if message is None:
            raise
        print(f"redline: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as exc:  # a full disk under --out (scan and campaign say more themselves)
        from .util.safe_text import one_line

        print(f"redline: {one_line(exc)}; free some space, then run the same command again", file=sys.stderr)
        return EXIT_UNTESTED
    except KeyboardInterrupt:
        print("redline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
