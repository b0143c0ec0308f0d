"""Abstract values on the simulated pickle stack.

The simulator never builds the objects a stream describes. It keeps literals it needs to
reason about (short strings, ints, tuples, lists) as plain Python values and replaces
everything else by one of these small records.
"""
from __future__ import annotations

from typing import Any


class _Mark:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MARK"


MARK = _Mark()
MAX_LABEL = 200
PREVIEW_DEPTH = 4  # containers nested deeper are shown as "..."
PREVIEW_ITEMS = 6  # items shown per container


class Ref:
    """A global the loader would import (``find_class(module, name)``)."""

    __slots__ = ("decision", "module", "name")

    def __init__(self, module: str, name: str, decision: Any) -> None:
        self.module = module
        self.name = name
        self.decision = decision

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return self.qualname


class Obj:
    """An object the loader would create by a call or a construction.

    ``dynamic`` marks a value produced by a callable the policy does not vouch for: calling
    it, or using it as the name of a global, is a call chosen at load time.
    """

    __slots__ = ("args", "cls", "dynamic", "entries", "func", "label", "state")

    def __init__(self, label: str, *, cls: Ref | None = None, func: Ref | None = None,
                 args: Any = None, dynamic: bool = False) -> None:
        # labels nest (a call of a call of ...): capped so a chain of calls stays linear
        self.label = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 3] + "..."
        self.cls = cls  # the class of an instance, when known
        self.func = func  # the allowed function that produced it, when known
        self.args = args
        self.state: Any = None
        self.dynamic = dynamic
        self.entries: list | None = None  # keys written by SETITEM(S) into a mapping instance

    def __repr__(self) -> str:
        return self.label


class Persistent:
    """The result of a persistent-id lookup (a torch storage, for instance)."""

    __slots__ = ("pid",)

    def __init__(self, pid: Any) -> None:
        self.pid = pid

    def __repr__(self) -> str:
        return f"persistent({preview(self.pid)})"


class Big:
    """A large str/bytes payload that the simulator skipped without copying."""

    __slots__ = ("kind", "size")

    def __init__(self, kind: str, size: int) -> None:
        self.kind = kind
        self.size = size

    def __repr__(self) -> str:
        return f"<{self.kind} of {self.size} bytes>"


class PDict:
    """A dict literal: pairs in insertion order (keys need not be hashable here)."""

    __slots__ = ("items",)

    def __init__(self, items: list | None = None) -> None:
        self.items = items if items is not None else []

    def get(self, key: Any, default: Any = None) -> Any:
        for k, v in reversed(self.items):
            if type(k) is type(key) and k == key:
                return v
        return default

    def __repr__(self) -> str:
        return preview(self)


class PSet:
    __slots__ = ("frozen", "items")

    def __init__(self, items: list | None = None, frozen: bool = False) -> None:
        self.items = items if items is not None else []
        self.frozen = frozen

    def __repr__(self) -> str:
        return ("frozenset" if self.frozen else "set") + f"({len(self.items)} items)"


def preview(value: Any, limit: int = 80) -> str:
    """A short, printable rendering of a value for issue details.

    The work is bounded by ``limit`` whatever the value: rendering stops as soon as the text
    is long enough, so a tree that shares its subtrees (tiny in a pickle, exponential when
    expanded) costs no more than a flat one."""
    out = _Preview(limit)
    try:
        out.render(value, 0)
    except _Full:
        pass
    text = "".join(out.parts)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class _Full(Exception):
    pass


class _Preview:
    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 4)
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        if self.size + len(text) > self.limit:
            text = text[: self.limit + 1 - self.size]
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise _Full

    def render(self, value: Any, depth: int) -> None:
        if isinstance(value, (tuple, list)):
            opening, closing = ("(", ")") if isinstance(value, tuple) else ("[", "]")
            self.items(opening, closing, value, depth, trailing_comma=isinstance(value, tuple) and len(value) == 1)
        elif isinstance(value, PDict):
            self.items("{", "}", value.items, depth, pairs=True)
        elif isinstance(value, PSet):
            self.write(("frozenset" if value.frozen else "set") + f"({len(value.items)} items)")
        elif isinstance(value, Persistent):
            self.write("persistent(")
            self.render(value.pid, depth + 1)
            self.write(")")
        elif isinstance(value, str):
            self.write(repr(value[: self.limit + 1]))
        elif isinstance(value, (bytes, bytearray)):
            self.write(repr(bytes(value[: self.limit + 1])))
        else:
            self.write(repr(value))

    def items(self, opening: str, closing: str, items: Any, depth: int, *, trailing_comma: bool = False,
              pairs: bool = False) -> None:
        if depth >= PREVIEW_DEPTH:
            self.write(opening + "..." + closing)
            return
        self.write(opening)
        for i, item in enumerate(items[:PREVIEW_ITEMS]):
            if i:
                self.write(", ")
            if pairs:
                self.render(item[0], depth + 1)
                self.write(": ")
                self.render(item[1], depth + 1)
            else:
                self.render(item, depth + 1)
        if len(items) > PREVIEW_ITEMS:
            self.write(", ...")
        if trailing_comma:
            self.write(",")
        self.write(closing)


class TooWide(Exception):
    """A value holds more nested items than a walk may visit."""


def nested_values(value: Any, budget: int = 50_000, seen: set[int] | None = None):
    """Every value inside ``value`` through plain containers (dicts, tuples, lists, sets),
    ``value`` included; each container is entered once however often the memo shares it,
    and TooWide is raised past ``budget`` visits (a stream of shared references must not
    make one opcode cost the product of their widths)."""
    seen = set() if seen is None else seen  # shared by walks that need not enter a container twice
    stack = [value]
    visits = 0
    while stack:
        item = stack.pop()
        visits += 1
        if visits > budget:
            raise TooWide(f"more than {budget} nested values")
        yield item
        if isinstance(item, (PDict, PSet, tuple, list)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, PDict):
                for key, inner in item.items:
                    stack.extend((key, inner))
            else:
                stack.extend(item.items if isinstance(item, PSet) else item)
