"""The one YAML loader for files redline does not own (system descriptions, incidents,
contexts, target configs, check parameters).

``yaml.safe_load`` builds no objects, but it still trusts the document's shape: a
few hundred bytes of nested aliases ("billion laughs") stand for billions of values that
every later walk (schema validation, JSON output, an error message quoting the value)
expands, an alias may point at its own ancestor so walks never end, and a deeply nested
document overflows the recursive composer with a RecursionError. This loader composes the
node graph first, with its depth bounded while it is built, then counts the values the
document stands for with aliases expanded (each node once, so the count is linear in the
file) and refuses it before anything is constructed when a limit is passed. Every refusal
is a one-line :class:`~redline.errors.UsageError` that names the file and the limit, never
the values.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError

__all__ = ["YamlLimits", "DEFAULT_LIMITS", "load_yaml_text", "load_yaml_file", "read_yaml_bytes", "read_yaml_mapping"]


@dataclasses.dataclass(frozen=True)
class YamlLimits:
    """How large a user's YAML document may be; far above any hand-written file."""

    max_bytes: int = 8 * 1024 * 1024  # size of the file
    max_depth: int = 64  # nesting of collections
    max_values: int = 200_000  # scalars and collections, counted with aliases expanded


DEFAULT_LIMITS = YamlLimits()


class _Refused(Exception):
    """A limit was passed while composing; carries the user-facing reason."""


def _bounded_loader(limits: YamlLimits) -> type[yaml.SafeLoader]:
    class BoundedLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
            self._depth += 1
            try:
                if self._depth > limits.max_depth:
                    mark = self.peek_event().start_mark
                    raise _Refused(f"is nested more than {limits.max_depth} levels deep (line {mark.line + 1})")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return BoundedLoader


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Values ``root`` stands for with every alias expanded; _Refused past ``limit`` or on a cycle.

    Aliases make the node graph a DAG (or worse, a cycle); the size of each node is
    computed once and reused, so the work is linear in the number of distinct nodes.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Refused("has an alias that refers to a collection containing it")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        open_nodes.discard(key)
        if total > limit:
            raise _Refused(f"stands for more than {limit:,} values once its aliases are expanded")
        sizes[key] = total
        return total

    return size(root)


def load_yaml_text(text: str, source: str, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """Parse one YAML document within ``limits``; ``source`` names it in errors (e.g. ``incident a.yaml``).

    Syntax errors and limits become a one-line UsageError with the line number when known.
    """
    if len(text) > limits.max_bytes:
        raise UsageError(f"{source} is larger than {limits.max_bytes:,} bytes; a YAML file this big is refused")
    loader = None
    try:
        loader = _bounded_loader(limits)(text)  # the reader already rejects some characters here
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, limits.max_values)
        return loader.construct_document(node)
    except _Refused as exc:
        raise UsageError(f"{source} {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None)  # ReaderError: reason
        detail = f": {' '.join(str(problem).split())}" if problem else ""
        raise UsageError(f"{source} is not valid YAML{where}{detail}") from None
    except RecursionError:  # a shape the depth bound did not foresee; still one line
        raise UsageError(f"{source} is nested too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_file(path: str | Path, what: str, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """Read and parse the YAML file at ``path``; ``what`` names the document (``target config``).

    The file is read only up to the size limit, so a huge or endless file (``/dev/zero``)
    costs no more than the limit.
    """
    path = Path(path)
    source = f"{what} {path}"
    raw = read_yaml_bytes(path, source, limits)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not UTF-8 text") from None
    return load_yaml_text(text, source, limits)


def read_yaml_bytes(path: str | Path, source: str, limits: YamlLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of the YAML file at ``path`` (``source`` names it in errors), read only up to
    the size limit: a FIFO or device (``/dev/zero``) is refused before it is opened, and a
    huge file costs no more than the limit."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
            raise UsageError(f"{source} is not a regular file")
        with open(path, "rb") as fh:
            raw = fh.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise UsageError(f"{source} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{source} is a folder, not a YAML file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UsageError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(raw) > limits.max_bytes:
        raise UsageError(f"{source} is larger than {limits.max_bytes:,} bytes; a YAML file this big is refused")
    return raw


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file; ``what`` names the document in messages."""
    path = Path(path)
    data = load_yaml_file(path, what)  # bounded: size, depth and alias expansion
    if not isinstance(data, dict):
        shape = "empty" if data is None else f"a {type(data).__name__}"
        raise UsageError(f"{what} {path} must hold a mapping of keys at the top level, but it is {shape}")
    return data
