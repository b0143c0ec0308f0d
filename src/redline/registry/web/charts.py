"""The dashboard's one chart: cases added per month, stacked by severity, as inline SVG.

No script and no image file: the SVG sits in the page and takes its colours from the
report's CSS variables (``--sev-critical``...), so it follows the shared palette and
passes the page's Content-Security-Policy.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from html import escape

from ...report.formatting import SEVERITY_SCALE

__all__ = ["fill_months", "timeline_svg"]

WIDTH, HEIGHT = 720, 200
_PAD_LEFT, _PAD_BOTTOM, _PAD_TOP = 34, 22, 8


def _month(text: str) -> tuple[int, int] | None:
    try:
        year, month = text[:7].split("-")
        value = (int(year), int(month))
    except (ValueError, AttributeError):
        return None
    return value if 1 <= value[1] <= 12 else None


def fill_months(months: Iterable[tuple[str, Mapping[str, int]]]) -> list[tuple[str, Counter]]:
    """Monthly counts ("YYYY-MM", {severity: n}) with the empty months between the first and
    the last put in, so a quiet month shows as a gap and not as nothing; bad labels are dropped."""
    counts: dict[tuple[int, int], Counter] = {}
    for label, by_severity in months:
        key = _month(label)
        if key is not None:
            counts.setdefault(key, Counter()).update(dict(by_severity))
    if not counts:
        return []
    (year, month), last = min(counts), max(counts)
    out = []
    while (year, month) <= last:
        out.append((f"{year:04d}-{month:02d}", counts.get((year, month), Counter())))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def timeline_svg(months: Iterable[tuple[str, Mapping[str, int]]]) -> str:
    """Cases per month stacked by severity, as an ``<svg>`` element (markup; texts escaped)."""
    buckets = fill_months(months)
    if not buckets:
        return '<p class="muted">No cases yet.</p>'
    tallest = max(sum(c.values()) for _, c in buckets) or 1
    plot_w, plot_h = WIDTH - _PAD_LEFT - 6, HEIGHT - _PAD_BOTTOM - _PAD_TOP
    step = plot_w / len(buckets)
    bar_w = min(48.0, max(1.0, step * 0.8))
    parts = [
        f'<svg class="timeline" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'aria-label="cases added per month, stacked by severity">',
        f'<line x1="{_PAD_LEFT}" y1="{_PAD_TOP + plot_h}" x2="{WIDTH - 6}" y2="{_PAD_TOP + plot_h}" '
        'style="stroke:var(--line)"/>',
        f'<text x="{_PAD_LEFT - 6}" y="{_PAD_TOP + 10}" text-anchor="end" style="fill:var(--muted)" '
        f'font-size="11">{tallest}</text>',
        f'<text x="{_PAD_LEFT - 6}" y="{_PAD_TOP + plot_h}" text-anchor="end" style="fill:var(--muted)" '
        'font-size="11">0</text>',
    ]
    order = [s.label for s in reversed(SEVERITY_SCALE)]  # None at the bottom, Critical on top
    for i, (start, counts) in enumerate(buckets):
        x = _PAD_LEFT + i * step + (step - bar_w) / 2
        y = _PAD_TOP + plot_h
        for label in order + sorted(set(counts) - set(order)):
            n = counts.get(label, 0)
            if not n:
                continue
            h = plot_h * n / tallest
            y -= h
            colour = f"var(--sev-{label.lower()})" if label in order else "var(--muted)"
            parts.append(
                f'<rect class="tbar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'style="fill:{colour}" data-severity="{escape(label)}" data-count="{n}">'
                f"<title>{escape(start)}: {n} {escape(label)}</title></rect>"
            )
    for i in sorted({0, len(buckets) - 1}):
        x = _PAD_LEFT + i * step + step / 2
        anchor = "start" if i == 0 and len(buckets) > 1 else ("end" if i else "middle")
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}" style="fill:var(--muted)" '
            f'font-size="11">{escape(buckets[i][0])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
