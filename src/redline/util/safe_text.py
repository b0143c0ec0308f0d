"""Text from untrusted sources made safe to show in a terminal or a log.

Model endpoints, YAML files, zip member names and file names reach redline's output. A
control character in them can move the cursor, recolour or erase lines (``\\x1b[...``),
and a bidirectional override (U+202E) can make a line read backwards, so a hostile input
could forge a "safe" verdict on screen. :func:`terminal_text` escapes every such character
visibly instead of dropping it, so nothing is hidden and nothing is interpreted:

- C0 controls except newline and tab, e.g. ESC -> ``\\x1b``, CR -> ``\\x0d``;
- DEL, the C1 controls (U+0080-U+009F, which some terminals treat like ESC sequences) and
  the bidirectional and invisible formatting characters -> ``\\uXXXX``.

The ``\\uXXXX`` form is also a JSON escape of the same character, and JSON text never holds
raw C0 controls, so a JSON document passed through :func:`terminal_text` stays valid JSON
with the same meaning. Newlines and tabs are kept because redline's own layout uses them;
callers that need one line per value use :func:`one_line`.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

__all__ = ["document_text", "echo", "one_line", "terminal_text", "UNSAFE_CHARACTERS"]

# Bidirectional embeddings, overrides and isolates, the implicit marks, and the zero-width
# and separator characters that change how a line looks without being visible.
_FORMAT_CHARS = (
    "\u061c"  # ARABIC LETTER MARK
    "\u200b-\u200f"  # zero-width space/joiners, LRM, RLM
    "\u2028\u2029"  # line and paragraph separators
    "\u202a-\u202e"  # LRE, RLE, PDF, LRO, RLO
    "\u2060-\u2064"  # word joiner and invisible operators
    "\u2066-\u2069"  # LRI, RLI, FSI, PDI
    "\ufeff"  # zero-width no-break space (BOM)
)
UNSAFE_CHARACTERS = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT_CHARS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x20 else f"\\u{code:04x}"


def terminal_text(value: Any) -> str:
    """``str(value)`` with control and bidi characters replaced by visible escapes."""
    text = value if isinstance(value, str) else str(value)
    return UNSAFE_CHARACTERS.sub(_escape, text)


def document_text(value: Any) -> str:
    """:func:`terminal_text` for reports (HTML, Markdown, XML): Windows line ends become
    plain newlines first, so only a stray carriage return shows as ``\\x0d``."""
    return terminal_text(value).replace("\\x0d\n", "\n")


def one_line(value: Any) -> str:
    """:func:`terminal_text` on one line: runs of whitespace (newlines, tabs) become one space."""
    return terminal_text(" ".join(str(value).split()))


def echo(value: Any = "", *, file: TextIO | None = None, end: str = "\n", flush: bool = False) -> None:
    """``print`` for text that holds anything untrusted: escaped by :func:`terminal_text`."""
    print(terminal_text(value), file=file if file is not None else sys.stdout, end=end, flush=flush)
