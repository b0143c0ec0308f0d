"""Reports and findings made up for the registry tests (and the registry benchmark)."""
from __future__ import annotations


def make_report(findings, target="zoo:fair_logreg", data="builtin:fair"):
    return {"schema": "redline.report/1", "target": {"spec": target}, "data": {"spec": data}, "findings": findings}


def make_finding(n, *, status="vulnerable", mode="FM05", check="FM05.equation_solving", title=None, summary=None,
                 severity="Important", metrics=None):
    return {
        "id": f"{n:016x}", "mode": mode, "check": check, "status": status, "severity": severity,
        "title": title or f"Model stealing: {_words(n, 4)}",
        "summary": summary or f"Case {n}: {_words(n + 100_000, 12)}.",
        "rationale": "rated on the evidence", "metrics": metrics or {"fidelity": 0.99}, "evidence": {},
        "params": {"spread": 0.1, "n": n}, "seed": 0, "budget": 1000,
    }


def _words(seed, count):
    """Distinct made-up texts: different seeds share few words."""
    import random

    return " ".join(random.Random(seed).sample(_WORDS, count))


_WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
          "romeo sierra tango uniform victor whiskey xray yankee zulu amber basalt cobalt dune ember fjord granite "
          "harbour iris jade kelp lagoon marble nectar onyx pebble quartz raven saffron tundra umber velvet willow "
          "yarrow zephyr acorn birch cedar daisy elm fern gorse heather ivy juniper larch maple nettle oak pine "
          "reed sage thyme vetch wheat").split()
