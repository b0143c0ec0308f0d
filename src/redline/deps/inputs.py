"""The packages to audit: pinned lines of a requirements file, or the installed distributions."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from ..errors import UsageError
from .matching import normalize

# pip's rule: "#" starts a comment at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# Per-requirement options such as "--hash=sha256:..." follow the requirement on its line.
_TRAILING_OPTIONS = re.compile(r"\s+--?[A-Za-z].*$")
_INCLUDE = re.compile(r"^(-r|--requirement)(\s*=\s*|\s+)(?P<path>\S+)$")


@dataclasses.dataclass
class Inventory:
    """Pinned packages (normalised name -> version) and the lines that could not be checked."""

    packages: dict[str, str]
    unchecked: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (requirement, reason)
    source: str = ""


def from_requirements(path: str | Path) -> Inventory:
    """Read ``name==version`` pins; ``-r`` includes are followed, other option lines skipped."""
    inventory = Inventory({}, [], str(path))
    _read_requirements(Path(path), inventory, seen=set())
    return inventory


def _read_requirements(path: Path, inventory: Inventory, seen: set[Path]) -> None:
    resolved = path.resolve()
    if resolved in seen:
        return  # an include cycle: each file is read once
    seen.add(resolved)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such requirements file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the requirements file ({exc})") from None

    for lineno, line in _logical_lines(text):
        line = _COMMENT.sub("", line).strip()
        if not line:
            continue
        include = _INCLUDE.match(line)
        if include:
            _read_requirements(path.parent / include["path"], inventory, seen)
            continue
        if line.startswith(("-e ", "--editable")):
            inventory.unchecked.append((line, "editable install, no version to look up"))
            continue
        if line.startswith("-"):
            continue  # index URLs, constraints, hashes and other pip options
        line = _TRAILING_OPTIONS.sub("", line)
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise UsageError(f"{path}:{lineno}: not a valid requirement ({exc})") from None
        if req.url:
            inventory.unchecked.append((line, "direct URL, no version to look up"))
            continue
        version = pinned_version(req)
        if version is None:
            inventory.unchecked.append((line, "unpinned"))
            continue
        name = normalize(req.name)
        previous = inventory.packages.get(name)
        if previous is not None and previous != version:
            raise UsageError(f"{path}:{lineno}: {name} is pinned to both {previous} and {version}")
        inventory.packages[name] = version


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations, keeping the number of the line each one starts on."""
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\"):
            buffer += raw[:-1] + " "
            continue
        lines.append((start, buffer + raw))
        buffer = ""
    if buffer:
        lines.append((start, buffer))
    return lines


def pinned_version(req: Requirement) -> str | None:
    """The version of an exact pin (``==1.2`` or ``===1.2``), or None for ranges and wildcards."""
    specs = list(req.specifier)
    if len(specs) != 1:
        return None
    spec = specs[0]
    if spec.operator not in ("==", "===") or spec.version.endswith(".*"):
        return None
    return spec.version


def from_environment() -> Inventory:
    """Every distribution importable here; where one is installed twice, the first on the path wins."""
    from importlib import metadata

    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if not name or not dist.version:
            continue
        packages.setdefault(normalize(name), dist.version)
    return Inventory(dict(sorted(packages.items())), [], "environment")
