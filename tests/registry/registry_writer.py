"""A registry writer in its own process, for the crash and concurrency tests (and the benchmark).

    python registry_writer.py URL report REPORT.json [--stall-after N SIGNAL_FILE]
    python registry_writer.py URL findings FIRST COUNT [SHARED_FIRST SHARED_COUNT]

``report`` records one report (one transaction); with --stall-after it writes SIGNAL_FILE
after N cases of that transaction and then waits to be killed. ``findings`` records made-up
findings one transaction each, as a scan with --registry does.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from registry_testkit import make_finding  # noqa: E402

from redline.registry import store  # noqa: E402


def stall_after(count: int, signal_file: str) -> None:
    original = store.Registry._add
    done = [0]

    def add_then_maybe_stall(self, conn, *args):
        result = original(self, conn, *args)
        done[0] += 1
        if done[0] == count:
            Path(signal_file).write_text("inside the transaction")
            time.sleep(600)
        return result

    store.Registry._add = add_then_maybe_stall


def main(argv: list[str]) -> None:
    url, kind = argv[0], argv[1]
    if kind == "report":
        if "--stall-after" in argv:
            i = argv.index("--stall-after")
            stall_after(int(argv[i + 1]), argv[i + 2])
        with store.Registry(url) as registry:
            print(len(registry.add_report(argv[2], "writer")))
        return
    first, count = int(argv[2]), int(argv[3])
    numbers = list(range(first, first + count))
    if len(argv) > 4:  # findings every writer records, interleaved with its own
        shared = range(int(argv[4]), int(argv[4]) + int(argv[5]))
        numbers = [n for pair in zip(numbers, shared) for n in pair] + numbers[len(shared):]
    with store.Registry(url) as registry:
        for n in numbers:
            registry.add_finding(make_finding(n), target="zoo:fair_logreg", data="builtin:fair", added_by=f"w{first}")


if __name__ == "__main__":
    main(sys.argv[1:])
