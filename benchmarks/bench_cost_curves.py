"""Cost curves: how the queries and seconds of one check per family grow with the work.

For one representative check of each family (evasion, training_time, privacy, extraction,
supply_chain, robustness; agents with --agents) it scans an MLP on builtin:digits through
the public API (`redline.scan`) along three axes, the other two held at their middle value:

* budget: the most queries the attack may send (`--budget`);
* model size: the width of the MLP's two hidden layers (parameters grow with its square);
* data size: the rows the check is given (split half train, a quarter test, a quarter pool).

Each row prints the rows the attack sent (`queries`), the rows sent to measure the result
(`evaluation_queries`), the check's own seconds, and its verdict; then, per family and axis,
how much seconds and queries grew from the smallest to the largest setting against how much
the setting grew (a growth near the setting's is linear cost). Seconds are wall time on a
shared machine: compare growth, not absolute times. `--png FILE` also draws the curves.

    python benchmarks/bench_cost_curves.py [--quick] [--families evasion,privacy] [--png curves.png]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import numpy as np  # noqa: E402

# family -> the check that stands for it (black-box where there is a choice), and how many
# times the budget axis it takes (a check whose smallest useful budget is larger: FM11.fuzz
# needs a case of each kind, FM16.corruption an input through each corruption).
FAMILIES = {
    "evasion": ("FM01.square", 1),
    "training_time": ("FM10.spectral_signatures", 10),
    "privacy": ("FM04.threshold", 1),
    "extraction": ("FM05.learning", 1),
    "supply_chain": ("FM11.fuzz", 5),
    "robustness": ("FM16.corruption", 5),
}
SKIPPED = ("not_applicable", "error")
AGENTS = ("agents", "FM12.reward_gaming", "zoo:boatrace_q_reward")
FULL = {"budgets": (250, 1000, 4000), "widths": (16, 64, 256), "rows": (450, 900, 1797)}
QUICK = {"budgets": (100, 300), "widths": (8, 32), "rows": (300, 600)}


def digits(rows: int, seed: int = 0):
    """builtin:digits cut to ``rows`` rows and split into train / test / pool roles."""
    from redline.data import load_data
    from redline.data.base import Dataset

    full = load_data("builtin:digits")
    x = np.concatenate([full.x(r) for r in full.roles if full.y(r) is not None])
    y = np.concatenate([full.y(r) for r in full.roles if full.y(r) is not None])
    order = np.random.default_rng(seed).permutation(len(x))[:rows]
    x, y = x[order], y[order]
    a, b = rows // 2, rows * 3 // 4
    return Dataset(name=f"digits[{rows}]", x_train=x[:a], y_train=y[:a], x_test=x[a:b], y_test=y[a:b],
                   x_pool=x[b:], y_pool=y[b:], modality="image", class_names=[str(i) for i in range(10)])


def mlp(data, width: int, seed: int = 0, steps: int = 200):
    """A two-hidden-layer MLP of ``width`` trained full-batch on the data's train role."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def measure(check: str, target, data, budget: int) -> dict:
    import redline

    start = time.perf_counter()
    report = redline.scan(target, data, select=check, budget=budget, seed=0)
    wall = time.perf_counter() - start
    finding = next(f for f in report.findings if f.check == check)
    return {"queries": finding.queries, "evaluation_queries": finding.evaluation_queries,
            "seconds": finding.seconds, "wall": wall, "status": finding.status.value,
            "reason": finding.reason}


def curves(families: dict[str, str], grid: dict, agents: bool) -> list[dict]:
    mid = {axis: values[len(values) // 2] for axis, values in grid.items()}
    rows_cache: dict[int, object] = {}
    models: dict[tuple[int, int], object] = {}

    def setting(width: int, rows: int):
        if rows not in rows_cache:
            rows_cache[rows] = digits(rows)
        if (width, rows) not in models:
            models[(width, rows)] = mlp(rows_cache[rows], width)
        return models[(width, rows)], rows_cache[rows]

    points = []
    print("| family | check | axis | value | queries | evaluation queries | seconds | verdict |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for family, (check, scale) in families.items():
        budget_mid = mid["budgets"] * scale
        runs = [("budget", b * scale, mid["widths"], mid["rows"], b * scale) for b in grid["budgets"]]
        runs += [("model width", w, w, mid["rows"], budget_mid) for w in grid["widths"]]
        runs += [("data rows", r, mid["widths"], r, budget_mid) for r in grid["rows"]]
        for axis, value, width, rows, budget in runs:
            model, data = setting(width, rows)
            got = measure(check, model, data, budget)
            points.append({"family": family, "check": check, "axis": axis, "value": value, **got})
            verdict = got["status"].replace("_", " ") + (f" ({got['reason'][:60]})" if got["status"] in SKIPPED else "")
            print(f"| {family} | {check} | {axis} | {value} | {got['queries']} | {got['evaluation_queries']} "
                  f"| {got['seconds']:.2f} | {verdict} |", flush=True)
    if agents:
        family, check, target = AGENTS
        for budget in grid["budgets"]:
            got = measure(check, target, None, budget)
            points.append({"family": family, "check": check, "axis": "budget", "value": budget, **got})
            print(f"| {family} | {check} | budget | {budget} | {got['queries']} | {got['evaluation_queries']} "
                  f"| {got['seconds']:.2f} | {got['status'].replace('_', ' ')} |", flush=True)
    return points


def growth(points: list[dict]) -> None:
    """Per family and axis: largest over smallest setting, for the setting, queries and seconds."""
    print("\n| family | axis | setting grew | queries grew | seconds grew |")
    print("|---|---|---:|---:|---:|")
    seen = []
    for p in points:
        if (p["family"], p["axis"]) not in seen:
            seen.append((p["family"], p["axis"]))
    for family, axis in seen:
        line = sorted((p for p in points if p["family"] == family and p["axis"] == axis), key=lambda p: p["value"])
        lo, hi = line[0], line[-1]
        ran = lo["status"] not in SKIPPED and hi["status"] not in SKIPPED

        def ratio(key: str) -> str:  # a check that did not run at one end has no growth to show
            return f"{hi[key] / lo[key]:.1f}x" if ran and lo[key] else "-"

        print(f"| {family} | {axis} | {hi['value'] / lo['value']:.1f}x | {ratio('queries')} | {ratio('seconds')} |")


def plot(points: list[dict], path: str) -> None:
    from matplotlib.figure import Figure

    axes_names = ["budget", "model width", "data rows"]
    fig = Figure(figsize=(12, 7), layout="constrained")
    grid = fig.subplots(2, 3)
    families = list(dict.fromkeys(p["family"] for p in points))
    for col, axis in enumerate(axes_names):
        for family in families:
            line = sorted((p for p in points if p["family"] == family and p["axis"] == axis), key=lambda p: p["value"])
            if line:
                xs = [p["value"] for p in line]
                grid[0][col].plot(xs, [p["queries"] + p["evaluation_queries"] for p in line], marker="o", label=family)
                grid[1][col].plot(xs, [p["seconds"] for p in line], marker="o", label=family)
        grid[0][col].set_title(f"queries vs {axis}")
        grid[1][col].set_title(f"seconds vs {axis}")
        for row in (0, 1):
            grid[row][col].set_xscale("log")
            grid[row][col].set_yscale("symlog")
    grid[0][0].legend(fontsize=7)
    fig.savefig(path, dpi=90)
    print(f"\ncurves drawn in {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="two small settings per axis (about a minute; for the tests)")
    ap.add_argument("--families", help=f"comma-separated, from {','.join(FAMILIES)} (default all)")
    ap.add_argument("--agents", action="store_true", help=f"also {AGENTS[1]} on {AGENTS[2]} against budget")
    ap.add_argument("--png", metavar="FILE", help="also draw the curves into this PNG")
    args = ap.parse_args()
    families = FAMILIES
    if args.families:
        wanted = [f.strip() for f in args.families.split(",")]
        unknown = [f for f in wanted if f not in FAMILIES]
        if unknown:
            ap.error(f"unknown family {unknown[0]!r} (known: {', '.join(FAMILIES)})")
        families = {f: FAMILIES[f] for f in wanted}
    import torch

    torch.set_num_threads(1)  # as a campaign worker runs: one math thread
    grid = QUICK if args.quick else FULL
    print(f"# cost curves on {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}); MLP on builtin:digits; "
          f"budgets {grid['budgets']}, widths {grid['widths']}, rows {grid['rows']}\n")
    start = time.perf_counter()
    points = curves(families, grid, args.agents)
    growth(points)
    if args.png:
        plot(points, args.png)
    print(f"\n{len(points)} scans in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
