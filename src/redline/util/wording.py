"""Numbers with their nouns, and text cut for tables: the one place that decides plurals.

``count(1, "query")`` is "1 query", ``count(2000, "query")`` is "2,000 queries";
``shorten`` cuts at a word boundary and marks the cut with "…" (used only where space is
short, such as table cells; reports keep the full text elsewhere).
"""
from __future__ import annotations

import math

# Nouns whose plural is not the noun plus "s".
_IRREGULAR = {
    "query": "queries", "entry": "entries", "family": "families", "class": "classes", "index": "indices",
    "matrix": "matrices", "pass": "passes", "batch": "batches", "patch": "patches", "axis": "axes",
    "sample": "samples", "child": "children",
}


def plural(noun: str, n: float | int = 2) -> str:
    """``noun`` as it reads after the number ``n`` (only exactly one is singular)."""
    if n == 1:
        return noun
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + "s"


def number(n: float | int, decimals: int = 0) -> str:
    """Thousands separated; whole numbers without decimals."""
    if isinstance(n, float) and not math.isfinite(n):
        return str(n)
    if decimals == 0 or float(n).is_integer():
        return f"{round(n):,}"
    return f"{n:,.{decimals}f}"


def count(n: float | int, noun: str, decimals: int = 0) -> str:
    """``count(1, "query")`` -> "1 query"; ``count(2.0, "query")`` -> "2 queries"."""
    shown = number(n, decimals)
    # The noun agrees with the number as printed: 1.0 shown as "1" is one query.
    value = float(shown.replace(",", "")) if shown.replace(",", "").replace(".", "", 1).isdigit() else n
    return f"{shown} {plural(noun, value)}"


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else cut at the last word boundary plus "…"."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a long word at the end: cut before it rather than inside it
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"
