"""Run the benchmarks: each ``bench_*.py`` here runs redline and a peer tool on the same
target in one process and prints their ratio. Machines are shared and noisy, so compare
ratios, not absolute times.

    python benchmarks/run.py                 # every benchmark
    python benchmarks/run.py filescan pgd    # those whose file name contains a word
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(word in s.stem for word in argv)]
    if not scripts:
        print("no benchmark matched", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)])
        print(f"== {script.stem}: exit {rc} after {time.perf_counter() - start:.0f}s\n", flush=True)
        if rc != 0:
            failed.append(script.stem)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
