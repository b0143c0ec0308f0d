"""FM05.learning against ART's CopycatCNN and KnockoffNets on the zoo MNIST CNN, in one run.

Same victim, same attacker pool (``x_pool``, 1,500 images), same query budgets, and the
same surrogate architecture (the small CNN redline trains). ART's attacks sample the pool
at random and train once; redline picks queries in rounds (margin + k-center on the pool,
plus mixup inputs) and trains on probabilities. Fidelity is label agreement with the
victim on the 1,000 held-out test images. ART sends at most one query per pool image, so
at budgets above the pool size it uses fewer queries (the table shows how many).

FM05.path_finding has no ART counterpart (ART has no tree extraction), so its part prints
redline's own numbers: queries, leaves found, and fidelity on held-out and uniform inputs
for the zoo fair_tree and for German-credit-sized generated trees (20 features, 30 leaves;
redline.zoo.credit_tree), one tree per seed.

    python benchmarks/bench_fm05_extraction.py [--part all|learning|path_finding]
        [--budgets 250,500,1000,2000] [--epochs 30] [--tree-seeds 10]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from art_harness import RowCounter, art_classifier, counting_module


def path_finding(tree_seeds: int) -> None:
    """Queries path-finding needs for an exact copy of each tree."""
    from redline import zoo
    from redline.checks.extraction.fm05_path_finding import PathFinding
    from redline.zoo.credit_tree import credit_like_tree

    runs = [("zoo fair_tree", zoo.load_target("fair_tree"), zoo.load_data_for("fair_tree"))]
    runs += [(f"credit tree, seed {seed}", *credit_like_tree(leaves=30, seed=seed)) for seed in range(tree_seeds)]
    print("| tree | queries | leaves found / true | fidelity held-out | fidelity uniform | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    credit = []
    for name, target, data in runs:
        start = time.perf_counter()
        finding = PathFinding()(target, data, budget=4000, seed=0)
        m = finding.metrics
        print(f"| {name} | {finding.queries} | {m['leaves']} / {m['true_leaves']} | {m['fidelity']:.4f} "
              f"| {m['fidelity_uniform']:.4f} | {time.perf_counter() - start:.1f} |", flush=True)
        if name.startswith("credit"):
            credit.append((finding.queries, m["fidelity"] == 1.0 and m["fidelity_uniform"] == 1.0))
    if credit:
        queries = np.array([q for q, _ in credit])
        print(f"\ncredit trees: {queries.mean():.0f} queries on average (min {queries.min()}, max {queries.max()}); "
              f"exact copies (fidelity 1.0 held-out and uniform) on {sum(e for _, e in credit)} of {len(credit)}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("all", "learning", "path_finding"), default="all")
    ap.add_argument("--budgets", default="250,500,1000,2000")
    ap.add_argument("--epochs", type=int, default=30, help="ART training epochs (redline's final round uses 30)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--tree-seeds", type=int, default=10, help="generated German-credit-sized trees for path-finding")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.part in ("all", "path_finding"):
        path_finding(args.tree_seeds)
    if args.part == "path_finding":
        return

    import torch
    from art.attacks.extraction import CopycatCNN, KnockoffNets

    from redline import zoo
    from redline.checks.extraction.fm05_learning import LearningExtraction
    from redline.util.surrogates import build_surrogate

    torch.set_num_threads(args.threads)
    target = zoo.load_target("mnist_cnn")
    data = zoo.load_data_for("mnist_cnn")
    pool = data.x_pool.astype(np.float32)
    x_test = data.x_test.astype(np.float32)
    counter = RowCounter()

    def classifier(module):
        return art_classifier(module, 10, pool.shape[1:], optimizer=torch.optim.Adam(module.parameters(), lr=2e-3))

    # ART's KnockoffNets uses the victim's predict output as probabilities; the zoo module answers
    # logits, so the victim estimator gets a softmax on top (labels are unchanged for Copycat).
    victim = classifier(counting_module(torch.nn.Sequential(target.module, torch.nn.Softmax(dim=1)), counter))
    with torch.no_grad():
        victim_test = target.module(torch.as_tensor(x_test)).argmax(1).numpy()

    def art_run(kind: str, budget: int) -> tuple[float, int, float]:
        thief = classifier(build_surrogate(pool.shape[1:], 10, "image", pool, seed=0))
        common = {"batch_size_fit": 64, "batch_size_query": 256, "nb_epochs": args.epochs, "nb_stolen": budget}
        if kind == "copycat":
            attack = CopycatCNN(victim, **common)
        else:
            attack = KnockoffNets(victim, sampling_strategy="random", use_probability=True, verbose=False, **common)
        np.random.seed(0)
        counter.rows = 0
        start = time.perf_counter()
        stolen = attack.extract(pool, thieved_classifier=thief)
        seconds = time.perf_counter() - start
        queries = counter.rows
        fidelity = float(np.mean(stolen.predict(x_test).argmax(1) == victim_test))
        return fidelity, queries, seconds

    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        start = time.perf_counter()
        finding = LearningExtraction()(target, data, budget=budget, seed=0)
        ours = (finding.metrics["fidelity"], finding.queries, time.perf_counter() - start)
        copycat = art_run("copycat", budget)
        knockoff = art_run("knockoff", budget)
        rows.append((budget, ours, copycat, knockoff))
        print(f"budget {budget}: redline {ours[0]:.3f} ({ours[1]} q, {ours[2]:.0f}s)  "
              f"copycat {copycat[0]:.3f} ({copycat[1]} q, {copycat[2]:.0f}s)  "
              f"knockoff {knockoff[0]:.3f} ({knockoff[1]} q, {knockoff[2]:.0f}s)", flush=True)

    print()
    print("| budget | redline fidelity (queries) | ART CopycatCNN (queries) | ART KnockoffNets (queries) "
          "| redline / Copycat | redline / Knockoff | time redline / Copycat / Knockoff |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for budget, ours, copycat, knockoff in rows:
        print(f"| {budget} | {ours[0]:.3f} ({ours[1]}) | {copycat[0]:.3f} ({copycat[1]}) | {knockoff[0]:.3f} ({knockoff[1]}) "
              f"| {ours[0] / copycat[0]:.3f} | {ours[0] / knockoff[0]:.3f} "
              f"| {ours[2]:.0f}s / {copycat[2]:.0f}s / {knockoff[2]:.0f}s |")
    wins = sum(ours[0] > max(copycat[0], knockoff[0]) for _, ours, copycat, knockoff in rows)
    print(f"\nredline has the higher fidelity at {wins} of {len(rows)} budgets")


if __name__ == "__main__":
    main()
