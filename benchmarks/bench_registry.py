"""Benchmark: the failure-case registry on SQLite and PostgreSQL.

1. Search latency: 10,000 cases, then word searches, filters and both, timed one by one
   (p50 and p95; goal p95 < 100 ms on 2 cores).
2. Dedup: distinct cases, their re-submissions (same failure, new finding id, other
   numbers, other case and punctuation) and paraphrases (synonyms, reordered clauses, a
   sentence added or dropped), plus distinct cases of the same check and target. Precision
   and recall of "seen again" at the store's threshold, and the MinHash similarity sweep
   that calibrated it.
3. Concurrent writers: several processes add findings at once, some shared; nothing lost.

    python benchmarks/bench_registry.py [--records 10000] [--writers 4] [--skip-postgres]

PostgreSQL: $REDLINE_TEST_POSTGRES_URL, else a throwaway cluster (tests/registry/throwaway_postgres.py).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "registry"))
sys.path.insert(0, str(ROOT / "src"))

from redline.registry import FailureCase, Registry  # noqa: E402
from redline.registry import dedup  # noqa: E402

# -- made-up failures --------------------------------------------------------------------------

SYSTEMS = ["photo tagging API", "loan scoring service", "spam filter", "readmission risk model", "voice assistant",
           "fraud detector", "content moderation model", "medical image triage", "traffic sign reader", "chat ranker"]
MODES = {
    "FM01": ("FM01.pgd", ["small perturbations flip {n}% of the {system}'s answers",
                          "adversarial noise invisible to people changes the {system}'s decision",
                          "gradient attack drives accuracy of the {system} down to {n}%"]),
    "FM02": ("FM02.label_flip", ["poisoned feedback shifts the {system} towards the attacker's label",
                                 "a few hundred crafted training rows cut accuracy of the {system} by {n} points"]),
    "FM04": ("FM04.lira", ["the {system} reveals which records were in its training data",
                           "confidence scores of the {system} tell members from non-members with auc 0.{n}"]),
    "FM05": ("FM05.learning", ["a copy of the {system} is trained from its answers with {n} queries",
                               "the {system}'s parameters are recovered from exact probabilities"]),
    "FM10": ("FM10.neural_cleanse", ["a hidden trigger makes the {system} output class {n}",
                                     "the {system} carries a backdoor planted by its supplier"]),
    "FM16": ("FM16.corruption", ["fog and blur cut the {system}'s accuracy to {n}%",
                                 "ordinary image noise breaks the {system} far more than expected"]),
}
DETAILS = ["the attack needed no insider access", "rate limits did not slow it down", "found during a red-team exercise",
           "reproduced with a fixed seed", "reported by an external researcher", "seen in production logs",
           "the model returns raw scores", "the endpoint is public", "retraining happens weekly",
           "no input validation in front of the model"]
COMPONENTS = ("alpine birch cobalt delta ember falcon garnet heron indigo jasper kestrel lumen meridian nimbus "
              "orchid pelican quasar rowan sequoia topaz umbra vertex wren xenon yarrow zenith").split()
SYNONYMS = {"reveals": "exposes", "records": "rows", "training": "train", "answers": "outputs", "copy": "clone",
            "trained": "fitted", "recovered": "extracted", "hidden": "secret", "output": "predict",
            "accuracy": "correctness", "cut": "reduce", "breaks": "degrades", "changes": "alters",
            "small": "tiny", "decision": "verdict", "attack": "attacker", "crafted": "forged", "shifts": "pushes",
            "needed": "required", "public": "open", "seen": "observed", "found": "discovered",
            "planted": "inserted", "carries": "contains", "tell": "distinguish", "exact": "precise"}


def make_case(rng: random.Random, k: int) -> FailureCase:
    mode = rng.choice(sorted(MODES))
    check, templates = MODES[mode]
    system = rng.choice(SYSTEMS)
    where = f"{rng.choice(COMPONENTS)} {rng.choice(COMPONENTS)}"
    title = rng.choice(templates).format(system=system, n=rng.randint(10, 99)) + f" in the {where} release"
    details = rng.sample(DETAILS, 3)
    summary = f"{title.capitalize()}; {details[0]}, {details[1]} and {details[2]}. Case {k} ({rng.getrandbits(32):08x})."
    # One model version per original: distinct cases of a registry differ in what failed or how.
    target = f"https://models.example/{system.replace(' ', '-')}/{where.replace(' ', '-')}/v{k}"
    return FailureCase(title=title.capitalize(), mode=mode, severity=rng.choice(["Critical", "Important", "Moderate"]),
                       summary=summary, system=system, target=target, check=check,
                       finding_id=f"{rng.getrandbits(64):016x}", metrics={"score": rng.random()})


def resubmission(rng: random.Random, case: FailureCase) -> FailureCase:
    """The same failure found again: new finding id, other numbers, other case and punctuation."""
    import re

    renumber = lambda text: re.sub(r"\d+", lambda m: str(rng.randint(10, 99)), text)  # noqa: E731
    title = renumber(case.title)
    title = title.upper() if rng.random() < 0.5 else title.lower() + "!"
    return FailureCase(**{**case.__dict__, "title": title, "summary": renumber(case.summary).replace(",", " -"),
                          "finding_id": f"{rng.getrandbits(64):016x}", "id": ""})


def paraphrase(rng: random.Random, case: FailureCase) -> FailureCase:
    """Reworded by a person: synonyms, the clauses reordered, a detail added or dropped."""
    def reword(text: str) -> str:
        return " ".join(SYNONYMS.get(w, w) if rng.random() < 0.6 else w for w in text.split())

    head, _, tail = case.summary.partition("; ")
    clauses = [c.strip(" .") for c in tail.split(".")[0].replace(" and ", ", ").split(",") if c.strip()]
    rng.shuffle(clauses)
    if rng.random() < 0.5 and len(clauses) > 2:
        clauses.pop()
    else:
        clauses.append(rng.choice(DETAILS))
    summary = f"{reword(head)}; {', '.join(reword(c) for c in clauses)}."
    return FailureCase(**{**case.__dict__, "title": reword(case.title), "summary": summary,
                          "finding_id": f"{rng.getrandbits(64):016x}", "id": ""})


def sibling(rng: random.Random, case: FailureCase) -> FailureCase:
    """Another failure of the same check on the same target: a different description."""
    check, templates = MODES[case.mode]
    other = [t for t in templates if t.format(system=case.system, n=0)[:12] != case.title.lower()[:12]] or templates
    title = rng.choice(other).format(system=case.system, n=rng.randint(10, 99)).capitalize()
    details = rng.sample(DETAILS, 3)
    return FailureCase(**{**case.__dict__, "title": title,
                          "summary": f"{title}; {details[0]}, {details[1]} and {details[2]}. Case x{rng.getrandbits(20)}.",
                          "finding_id": f"{rng.getrandbits(64):016x}", "id": ""})


# -- 1. search latency ---------------------------------------------------------------------------

def bench_search(url: str, records: int, queries: int) -> dict[str, float]:
    rng = random.Random(1)
    registry = Registry(url)
    started = time.perf_counter()
    batch = []
    for k in range(records):
        batch.append(make_case(rng, k))
        if len(batch) == 500:
            registry.add_cases(batch)
            batch = []
    if batch:
        registry.add_cases(batch)
    load_s = time.perf_counter() - started
    stored = registry.list(limit=1).total
    words = ["membership", "poisoned", "backdoor", "fog", "clone", "researcher", "spam", "copy", "trigger",
             "scores", "public", "parameters", "noise", "loan", "medical"]
    timings, hits = [], []
    for q in range(queries):
        kind = q % 3
        t = time.perf_counter()
        if kind == 0:
            page = registry.search(rng.choice(words))
        elif kind == 1:
            page = registry.search("", mode=rng.choice(sorted(MODES)), severity="critical,important", status="open")
        else:
            page = registry.search(f"{rng.choice(words)} {rng.choice(['the', 'model', 'api', 'data'])}",
                                   mode=rng.choice(sorted(MODES)), system=rng.choice(SYSTEMS))
        timings.append((time.perf_counter() - t) * 1000)
        hits.append(page.total)
    registry.close()
    timings.sort()
    return {"records": stored, "load_s": load_s, "p50_ms": statistics.median(timings),
            "p95_ms": timings[int(0.95 * (len(timings) - 1))], "max_ms": timings[-1],
            "median_hits": statistics.median(hits)}


# -- 2. dedup --------------------------------------------------------------------------------

def bench_dedup(url: str, bases: int) -> dict[str, object]:
    rng = random.Random(2)
    originals = [make_case(rng, k) for k in range(bases)]
    variants = [(i, resubmission(rng, c), "resubmitted") for i, c in enumerate(originals)]
    variants += [(i, paraphrase(rng, c), "paraphrased") for i, c in enumerate(originals)]
    negatives = [(i, sibling(rng, c)) for i, c in enumerate(originals[: bases // 2])]
    # The similarity sweep (what calibrated THRESHOLD): positives against their original, negatives against theirs.
    sig = lambda c: dedup.signature(dedup.case_text(c.mode, c.check, c.target, c.title, c.summary))  # noqa: E731
    base_sigs = [sig(c) for c in originals]
    pos = [(kind, dedup.similarity(sig(v), base_sigs[i])) for i, v, kind in variants]
    neg = [dedup.similarity(sig(v), base_sigs[i]) for i, v in negatives]
    sweep = []
    for threshold in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        tp = sum(s >= threshold for _, s in pos)
        fp = sum(s >= threshold for s in neg)
        sweep.append((threshold, tp / max(tp + fp, 1), tp / len(pos)))
    # The store itself: add the originals, then every variant and negative; count the merges.
    registry = Registry(url)
    ids = [registry.add_case(c).id for c in originals]
    distinct = len(set(ids))
    by_kind = {"resubmitted": [0, 0], "paraphrased": [0, 0]}
    true_merges = false_merges = 0
    for i, v, kind in variants:
        r = registry.add_case(v)
        right = not r.new and r.id == ids[i]
        by_kind[kind][0] += right
        by_kind[kind][1] += 1
        true_merges += right
        false_merges += (not r.new) and not right
    for i, v in negatives:
        r = registry.add_case(v)
        false_merges += not r.new
    registry.close()
    positives = len(variants)
    return {"originals": bases, "distinct_after_adding": distinct, "variants": positives, "negatives": len(negatives),
            "precision": true_merges / max(true_merges + false_merges, 1), "recall": true_merges / positives,
            "recall_resubmitted": by_kind["resubmitted"][0] / by_kind["resubmitted"][1],
            "recall_paraphrased": by_kind["paraphrased"][0] / by_kind["paraphrased"][1],
            "false_merges": false_merges, "sweep": sweep,
            "similarity_paraphrased_median": statistics.median(s for k, s in pos if k == "paraphrased"),
            "similarity_negative_max": max(neg)}


# -- 3. concurrent writers ---------------------------------------------------------------------

def bench_writers(url: str, writers: int, each: int, shared: int) -> dict[str, float]:
    Registry(url).close()
    writer = ROOT / "tests" / "registry" / "registry_writer.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(writer), url, "findings", str(100_000 * (w + 1)), str(each),
                               "900000", str(shared)], env=env) for w in range(writers)]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - started
    with Registry(url) as registry:
        total = registry.list(limit=1).total
        sample = registry.list(limit=1).cases[0].id
        observations = len(registry.observations(sample))
    expected = writers * each + shared
    return {"writers": writers, "findings_sent": writers * (each + shared), "cases": total, "expected": expected,
            "lost": expected - total, "failed_writers": sum(c != 0 for c in codes), "seconds": seconds,
            "observations_of_one_case": observations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--dedup-cases", type=int, default=300)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--per-writer", type=int, default=100)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--only", choices=("search", "dedup", "writers"), action="append",
                        help="run only these parts (repeatable; default all)")
    args = parser.parse_args()
    parts = set(args.only or ("search", "dedup", "writers"))

    backends: dict[str, object] = {}
    temporary = tempfile.TemporaryDirectory(prefix="redline-bench-registry-")
    folder = Path(temporary.name)
    if not args.skip_sqlite:
        backends["sqlite"] = lambda name: f"sqlite:///{folder / name}.db"
    server = None
    if not args.skip_postgres:
        from throwaway_postgres import ENV_VAR, ThrowawayPostgres, fresh_database

        base = os.environ.get(ENV_VAR)
        if not base:
            server = ThrowawayPostgres()
            base = server.start()
        backends["postgresql"] = lambda name, base=base: fresh_database(base, f"bench_{name}")
    try:
        for backend, make_url in backends.items() if "search" in parts else ():
            s = bench_search(make_url("search"), args.records, args.queries)
            print(f"[{backend}] search over {s['records']} cases (loaded in {s['load_s']:.1f} s): "
                  f"p50 {s['p50_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms, max {s['max_ms']:.1f} ms "
                  f"(goal p95 < 100 ms: {'met' if s['p95_ms'] < 100 else 'NOT met'}); median hits {s['median_hits']:.0f}")
        for backend, make_url in backends.items() if "dedup" in parts else ():
            d = bench_dedup(make_url("dedup"), args.dedup_cases)
            print(f"[{backend}] dedup at threshold {dedup.THRESHOLD}: precision {d['precision']:.3f}, recall "
                  f"{d['recall']:.3f} (re-submitted {d['recall_resubmitted']:.3f}, paraphrased "
                  f"{d['recall_paraphrased']:.3f}); {d['false_merges']} false merges over {d['variants']} variants and "
                  f"{d['negatives']} same-check-same-target negatives; {d['distinct_after_adding']} of "
                  f"{d['originals']} originals kept apart")
            if backend == "sqlite":
                print(f"  similarity: paraphrase median {d['similarity_paraphrased_median']:.2f}, "
                      f"negative max {d['similarity_negative_max']:.2f}")
                print("  threshold sweep (precision / recall against the originals):")
                for threshold, precision, recall in d["sweep"]:
                    print(f"    {threshold:.1f}: {precision:.3f} / {recall:.3f}")
        for backend, make_url in backends.items() if "writers" in parts else ():
            w = bench_writers(make_url("writers"), args.writers, args.per_writer, 20)
            print(f"[{backend}] {w['writers']} concurrent writers sent {w['findings_sent']} findings in "
                  f"{w['seconds']:.1f} s: {w['cases']} cases of {w['expected']} expected, lost {w['lost']}, "
                  f"failed writers {w['failed_writers']}")
    finally:
        if server is not None:
            server.stop()
        temporary.cleanup()


if __name__ == "__main__":
    main()
