"""The mode codes and the metric vocabulary are declared once (issue 13).

The catalog owns the mode codes; the checks and the two producers outside the registry
(the static scan of a model file, the dependency audit) own the metric names, and
``triage.vocabulary`` reads them. These tests read the source of every other module and
fail when a list of codes or of metric names is written down again.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import redline
from redline.catalog import MODE_CODES

SRC = Path(redline.__file__).resolve().parent
_CODE = re.compile(r"^FM\d\d$")

# Where the metric names are declared: the checks and their shared helpers, the two other
# producers, and the vocabulary (the headline order and the list-valued names).
METRIC_OWNERS = ("checks/", "util/", "filescan/findings.py", "deps/", "triage/vocabulary.py")


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _literal_strings(node: ast.AST) -> set[str]:
    """The string constants a tuple, list, set or dict literal spells out."""
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", [])
    return {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}


def _collections(tree: ast.AST):
    return (n for n in ast.walk(tree) if isinstance(n, (ast.Tuple, ast.List, ast.Set, ast.Dict)))


def test_mode_codes_come_only_from_the_catalog():
    copies = []
    for name, tree in _modules():
        if name.startswith("catalog/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                codes = {s for s in _literal_strings(node) if _CODE.match(s)}
                if len(codes) >= 5:
                    copies.append(f"{name}:{node.lineno}: a list of {len(codes)} mode codes")
            elif isinstance(node, ast.JoinedStr):  # f"FM{i:02d}": codes made up again
                head = node.values[0] if node.values else None
                tail = node.values[1] if len(node.values) > 1 else None
                if (isinstance(head, ast.Constant) and str(head.value).endswith("FM")
                        and isinstance(tail, ast.FormattedValue) and tail.format_spec is not None):
                    copies.append(f"{name}:{node.lineno}: mode codes generated")
    assert not copies, "mode codes written down outside redline/catalog:\n" + "\n".join(copies)


def test_the_catalog_codes_are_the_ones_everyone_uses():
    from redline.catalog import load_modes
    from redline.report import model
    from redline.triage.rules import load_rules

    assert tuple(m.code for m in load_modes()) == MODE_CODES
    assert model.MODE_CODES is MODE_CODES  # the report writers' codes are the catalog's object
    assert tuple(load_rules().modes) == MODE_CODES


def test_metric_names_are_not_listed_outside_their_declarations():
    from redline.triage.vocabulary import metric_names

    known = set(metric_names())
    assert len(known) > 100
    copies = []
    for name, tree in _modules():
        if name.startswith(METRIC_OWNERS):
            continue
        for node in _collections(tree):
            listed = _literal_strings(node) & known
            if len(listed) >= 5:
                copies.append(f"{name}:{node.lineno}: {sorted(listed)[:6]}")
    assert not copies, "a list of metric names outside the producers' declarations:\n" + "\n".join(copies)


def test_triage_and_the_reports_read_the_declared_vocabulary():
    from redline.checks import all_checks
    from redline.findings import Finding, Status
    from redline.report.formatting import key_metrics
    from redline.triage.rules import RULE_NAMES
    from redline.triage.vocabulary import (
        HEADLINE_METRICS,
        LIST_METRICS,
        declarations,
        is_declared,
    )

    for cls in all_checks().values():
        plain = [m for m in cls.metrics if not any(c in m for c in "*?[")]
        assert all(m in RULE_NAMES for m in plain), cls.id  # every declared name may be read by a rule
        assert set(cls.metrics) <= set(declarations()[cls.mode])
    assert all(is_declared(m) for m in (*HEADLINE_METRICS, *LIST_METRICS))
    assert "no_such_metric" not in RULE_NAMES
    finding = Finding(id="x", mode="FM04", check="FM04.lira", title="t", status=Status.VULNERABLE,
                      metrics={"members": 10, "advantage": 0.3, "auc": 0.9})
    assert [name for name, _ in key_metrics(finding)] == ["auc", "advantage", "members"]
