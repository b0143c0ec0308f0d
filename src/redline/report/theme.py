"""The one look of redline's HTML pages: a base layout, a stylesheet and a colour palette.

The scan report, the threat model and the demo index all render through :func:`page`, and
every colour they show comes from ``util/palette.json`` (CSS variables declared here,
used by ``templates/base.css``). A page adds markup, never its own colours, so a severity or
a status looks the same wherever it appears.

Pages are self-contained (no scripts, nothing remote) and values from findings, YAML files or
endpoints are attacker-chosen: :func:`e` escapes them, and the layout's Content-Security-Policy
forbids scripts and remote loads as a second line of defence.
"""
from __future__ import annotations

import functools
import html
import string
from importlib import resources
from typing import Any

from ..severity import Severity
from ..util.palette import palette
from ..util.safe_text import document_text

__all__ = ["CSP", "badge", "e", "page", "palette", "pill", "severity_class", "stylesheet"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def _ident(name: str) -> str:
    return name.lower().replace(" ", "_")


@functools.cache
def stylesheet() -> str:
    """The stylesheet every page embeds: palette variables, palette classes, then base.css."""
    colours = palette()
    variables = [f"--{name}:{value}" for name, value in colours["ui"].items()]
    variables += [f"--sev-{_ident(label)}:{value}" for label, value in colours["severity"].items()]
    rules = []
    for status, tone in colours["status"].items():
        variables += [f"--st-{status}-text:{tone['text']}", f"--st-{status}-bg:{tone['background']}",
                      f"--st-{status}-border:{tone['border']}"]
        pills = [f".st-{status}"] + [f".cov-{value}" for value, alias in colours["coverage"].items() if alias == status]
        rules.append(f"{','.join(pills)}{{background:var(--st-{status}-bg);color:var(--st-{status}-text);"
                     f"border-color:var(--st-{status}-border)}}")
        if "accent" in tone:
            variables.append(f"--st-{status}-accent:{tone['accent']}")
            rules.append(f".f-{status}{{--accent:var(--st-{status}-accent)}}")
    rules += [f".sev-{_ident(label)}{{--sev:var(--sev-{_ident(label)})}}" for label in colours["severity"]]
    return ":root{" + ";".join(variables) + "}\n" + "\n".join(rules) + "\n" + _template("base.css")


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute. Control and bidi characters
    (ANSI colour codes, NUL, U+202E) are shown as visible escapes; newlines and tabs stay for <pre>."""
    return html.escape(document_text(value), quote=True)


def severity_class(severity: Severity) -> str:
    return f"sev-{_ident(severity.label)}"


def badge(severity: Severity) -> str:
    """A severity in its palette colour."""
    return f'<span class="badge {severity_class(severity)}">{e(severity.label)}</span>'


def pill(kind: str, value: str, label: str) -> str:
    """A status (``kind="st"``) or coverage (``kind="cov"``) value in its palette colours."""
    return f'<span class="pill {kind}-{e(value)}">{e(label)}</span>'


def page(*, title: str, brand: str, heading: str, body: str, header: str = "", footer: str = "",
         heading_class: str = "") -> str:
    """A whole page in the shared layout.

    ``title``, ``brand`` and ``heading`` are plain text and escaped here; ``header`` (shown under
    the heading), ``body`` and ``footer`` are markup the caller built with :func:`e`.
    """
    layout = string.Template(_template("page.html"))
    return layout.substitute(
        csp=CSP,
        title=e(title),
        stylesheet=stylesheet(),
        brand=e(brand),
        heading=e(heading),
        heading_class=f' class="{e(heading_class)}"' if heading_class else "",
        header=header,
        body=body,
        footer=footer,
    )
