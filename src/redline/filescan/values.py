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
        self.label = label
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
        return "{" + ", ".join(f"{preview(k)}: {preview(v)}" for k, v in self.items[:4]) + (
            ", ..." if len(self.items) > 4 else "") + "}"


class PSet:
    __slots__ = ("frozen", "items")

    def __init__(self, items: list | None = None, frozen: bool = False) -> None:
        self.items = items if items is not None else []
        self.frozen = frozen

    def __repr__(self) -> str:
        return ("frozenset" if self.frozen else "set") + f"({len(self.items)} items)"


def preview(value: Any, limit: int = 80) -> str:
    """A short, printable rendering of a value for issue details."""
    if isinstance(value, tuple):
        text = "(" + ", ".join(preview(v, limit) for v in value[:6]) + (", ..." if len(value) > 6 else "") + (
            "," if len(value) == 1 else "") + ")"
    elif isinstance(value, list):
        text = "[" + ", ".join(preview(v, limit) for v in value[:6]) + (", ..." if len(value) > 6 else "") + "]"
    else:
        text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
