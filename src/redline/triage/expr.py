"""The small condition language of the triage rules, and the rationale templates.

Conditions are parsed once when the rules load, type-checked against the names they may
use, and evaluated without ``eval``. The grammar, loosest binding first::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum | "in" sum)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | 'string' | true | false | NAME | NAME "(" expr ")" | "(" expr ")"
             | "[" (atom ("," atom)*)? "]"

Names may contain dots followed by digits, so metric names such as ``tpr_at_fpr_0.001``
read naturally. The functions are ``count(list)`` and ``abs(number)``.

A metric a finding does not report is *unknown*. Unknown spreads through arithmetic and
comparisons, ``and``/``or``/``not`` follow three-valued logic, and a rule fires only when
its condition is definitely true, so a missing metric never makes a rule match.

Templates are text with ``{expression}`` or ``{expression:format-spec}`` placeholders;
a part in ``[[ ... ]]`` is left out when any placeholder inside it is unknown.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Expr", "ExprError", "Template", "Types", "compile_condition", "compile_template"]


class ExprError(ValueError):
    """A condition or template does not parse or does not type-check."""


# Static types: "number", "bool", "str", "list", or a tuple of allowed strings (an enum fact).
Type = str | tuple[str, ...]
Types = Mapping[str, Type]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.\d+)*)
      | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_FUNCTIONS: dict[str, tuple[str, str]] = {"count": ("list", "number"), "abs": ("number", "number")}
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")


# --- syntax tree -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Const:
    value: Any


@dataclasses.dataclass(frozen=True)
class Name:
    name: str


@dataclasses.dataclass(frozen=True)
class ListLit:
    items: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class Call:
    func: str
    arg: Node


@dataclasses.dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: Node


@dataclasses.dataclass(frozen=True)
class Binary:
    op: str  # arithmetic, comparison or "in"
    left: Node
    right: Node


@dataclasses.dataclass(frozen=True)
class Logic:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


Node = Const | Name | ListLit | Call | Unary | Binary | Logic


# --- parsing ---------------------------------------------------------------------------------

def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExprError(f"unexpected {text[pos:].strip()[:12]!r} in {text!r}")
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "name" and value in _KEYWORDS:
            kind = "keyword"
        tokens.append((kind, value))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def parse(self) -> Node:
        if not self.tokens:
            raise ExprError("empty expression")
        node = self.expr()
        if self.pos != len(self.tokens):
            raise ExprError(f"unexpected {self.tokens[self.pos][1]!r} in {self.text!r}")
        return node

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ExprError(f"{self.text!r} ends too early" + (f" (expected {expected!r})" if expected else ""))
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ExprError(f"expected {expected!r} but found {token[1]!r} in {self.text!r}")
        self.pos += 1
        return token

    def expr(self) -> Node:
        return self._logic("or", self.conjunction)

    def conjunction(self) -> Node:
        return self._logic("and", self.negation)

    def _logic(self, op: str, operand: Callable[[], Node]) -> Node:
        items = [operand()]
        while self.peek() == op:
            self.take()
            items.append(operand())
        return items[0] if len(items) == 1 else Logic(op, tuple(items))

    def negation(self) -> Node:
        if self.peek() == "not":
            self.take()
            return Unary("not", self.negation())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        if self.peek() in _COMPARE or self.peek() == "in":
            op = self.take()[1]
            return Binary(op, left, self.sum())
        return left

    def sum(self) -> Node:
        node = self.product()
        while self.peek() in ("+", "-"):
            node = Binary(self.take()[1], node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/"):
            node = Binary(self.take()[1], node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() == "-":
            self.take()
            return Unary("-", self.unary())
        return self.atom()

    def atom(self) -> Node:
        kind, value = self.take()
        if kind == "number":
            number = float(value)
            return Const(int(number) if number.is_integer() and re.fullmatch(r"\d+", value) else number)
        if kind == "string":
            return Const(value[1:-1])
        if kind == "keyword" and value in ("true", "false"):
            return Const(value == "true")
        if kind == "name":
            if self.peek() == "(":
                self.take("(")
                arg = self.expr()
                self.take(")")
                return Call(value, arg)
            return Name(value)
        if value == "(":
            node = self.expr()
            self.take(")")
            return node
        if value == "[":
            items: list[Any] = []
            while self.peek() != "]":
                item = self.unary()
                if isinstance(item, Unary) and isinstance(item.operand, Const):
                    item = Const(-item.operand.value)
                if not isinstance(item, Const):
                    raise ExprError(f"list items must be literals in {self.text!r}")
                items.append(item.value)
                if self.peek() != "]":
                    self.take(",")
            self.take("]")
            return ListLit(tuple(items))
        raise ExprError(f"unexpected {value!r} in {self.text!r}")


# --- type checking ---------------------------------------------------------------------------

def _type_of_const(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "str"


def _infer(node: Node, types: Types, text: str) -> Type:
    if isinstance(node, Const):
        return _type_of_const(node.value)
    if isinstance(node, Name):
        if node.name not in types:
            raise ExprError(f"unknown name {node.name!r} in {text!r}")
        return types[node.name]
    if isinstance(node, ListLit):
        kinds = {_type_of_const(v) for v in node.items}
        if len(kinds) > 1 or "bool" in kinds:
            raise ExprError(f"a list must hold only numbers or only strings in {text!r}")
        return "list"
    if isinstance(node, Call):
        if node.func not in _FUNCTIONS:
            raise ExprError(f"unknown function {node.func!r} in {text!r} (known: {', '.join(_FUNCTIONS)})")
        wanted, result = _FUNCTIONS[node.func]
        if _base(_infer(node.arg, types, text)) != wanted:
            raise ExprError(f"{node.func}() takes a {wanted} in {text!r}")
        return result
    if isinstance(node, Unary):
        inner = _infer(node.operand, types, text)
        wanted = "bool" if node.op == "not" else "number"
        if inner != wanted:
            raise ExprError(f"'{node.op}' needs a {wanted} operand in {text!r}")
        return wanted
    if isinstance(node, Logic):
        for operand in node.operands:
            if _infer(operand, types, text) != "bool":
                raise ExprError(f"'{node.op}' joins conditions, not values, in {text!r}")
        return "bool"
    left, right = _infer(node.left, types, text), _infer(node.right, types, text)
    if node.op in ("+", "-", "*", "/", "<", "<=", ">", ">="):
        if left != "number" or right != "number":
            raise ExprError(f"'{node.op}' compares numbers in {text!r}")
        return "number" if node.op in ("+", "-", "*", "/") else "bool"
    if node.op in ("==", "!="):
        _check_equal(node.left, left, node.right, right, text)
        return "bool"
    # "in": a value on the left, a list literal or a list-valued name on the right
    if right != "list":
        raise ExprError(f"'in' needs a list on its right in {text!r}")
    if isinstance(node.right, ListLit):
        for item in node.right.items:
            _check_equal(node.left, left, Const(item), _type_of_const(item), text)
    elif _base(left) != "number":
        raise ExprError(f"only numbers can be looked up in a list-valued name in {text!r}")
    return "bool"


def _base(t: Type) -> str:
    return "str" if isinstance(t, tuple) else t


def _check_equal(left: Node, lt: Type, right: Node, rt: Type, text: str) -> None:
    if _base(lt) != _base(rt):
        raise ExprError(f"cannot compare a {_base(lt)} with a {_base(rt)} in {text!r}")
    for enum, other in ((lt, right), (rt, left)):
        if isinstance(enum, tuple) and isinstance(other, Const) and other.value not in enum:
            raise ExprError(f"{other.value!r} is not one of {', '.join(enum)} in {text!r}")


# --- evaluation (three-valued: None means unknown) -------------------------------------------

def _evaluate(node: Node, env: Mapping[str, Any]) -> Any:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Name):
        return env.get(node.name)
    if isinstance(node, ListLit):
        return list(node.items)
    if isinstance(node, Call):
        arg = _evaluate(node.arg, env)
        if arg is None:
            return None
        return len(arg) if node.func == "count" else abs(arg)
    if isinstance(node, Unary):
        value = _evaluate(node.operand, env)
        if value is None:
            return None
        return (not value) if node.op == "not" else -value
    if isinstance(node, Logic):
        values = [_evaluate(operand, env) for operand in node.operands]
        decisive = node.op == "or"  # True decides an "or", False decides an "and"
        if any(v is decisive for v in values):
            return decisive
        return None if any(v is None for v in values) else not decisive
    left, right = _evaluate(node.left, env), _evaluate(node.right, env)
    if left is None or right is None:
        return None
    op = node.op
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return None if right == 0 else left / right
    if op == "in":
        return left in right
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right,
            "==": left == right, "!=": left != right}[op]


def _names(node: Node) -> set[str]:
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Call):
        return _names(node.arg)
    if isinstance(node, Unary):
        return _names(node.operand)
    if isinstance(node, Binary):
        return _names(node.left) | _names(node.right)
    if isinstance(node, Logic):
        return set().union(*(_names(o) for o in node.operands))
    return set()


@dataclasses.dataclass(frozen=True)
class Expr:
    """A parsed, type-checked expression."""

    text: str
    tree: Node = dataclasses.field(repr=False)

    @property
    def names(self) -> frozenset[str]:
        """Every name the expression reads."""
        return frozenset(_names(self.tree))

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """The value, or None when it depends on an unknown name."""
        return _evaluate(self.tree, env)

    def holds(self, env: Mapping[str, Any]) -> bool:
        """True only when the condition is definitely true."""
        return self.evaluate(env) is True


def compile_condition(text: Any, types: Types) -> Expr:
    """Parse and type-check a condition; it must yield true or false."""
    if not isinstance(text, str):
        raise ExprError(f"a condition must be text, not {text!r}")
    tree = _Parser(text).parse()
    if _infer(tree, types, text) != "bool":
        raise ExprError(f"{text!r} is a value, not a condition")
    return Expr(text, tree)


# --- templates -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)
_SAMPLES: dict[str, Any] = {"number": 0.5, "bool": True, "str": "labels", "list": [1, 2]}


@dataclasses.dataclass(frozen=True)
class _Slot:
    expr: Expr
    spec: str


@dataclasses.dataclass(frozen=True)
class Template:
    """Text with placeholders; ``render`` fills them from an environment."""

    text: str
    # Alternating literal text and slots, with optional groups as nested tuples.
    parts: tuple[Any, ...] = dataclasses.field(repr=False)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(_template_names(self.parts))

    def render(self, env: Mapping[str, Any]) -> str:
        text = _render_parts(self.parts, env, optional=False)
        return " ".join((text or "").split())


def compile_template(text: Any, types: Types) -> Template:
    """Parse a template, type-check its placeholders and try each format spec on a sample."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("a template must be non-empty text")
    parts: list[Any] = []
    pos = 0
    for match in _OPTIONAL.finditer(text):
        parts.extend(_compile_plain(text[pos:match.start()], types, text))
        parts.append(tuple(_compile_plain(match.group(1), types, text)))
        pos = match.end()
    parts.extend(_compile_plain(text[pos:], types, text))
    return Template(text, tuple(parts))


def _compile_plain(chunk: str, types: Types, whole: str) -> list[Any]:
    if "[[" in chunk or "]]" in chunk:
        raise ExprError(f"unbalanced [[ ]] in template {whole!r}")
    parts: list[Any] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(chunk):
        parts.append(chunk[pos:match.start()])
        body = match.group(1)
        source, _, spec = body.partition(":")
        tree = _Parser(source).parse()
        kind = _base(_infer(tree, types, source))
        try:
            _format(_SAMPLES[kind], spec)
        except (ValueError, TypeError):
            raise ExprError(f"bad format {spec!r} for a {kind} in template {whole!r}") from None
        parts.append(_Slot(Expr(source, tree), spec))
        pos = match.end()
    tail = chunk[pos:]
    if "{" in tail or "}" in tail or any(("{" in p or "}" in p) for p in parts if isinstance(p, str)):
        raise ExprError(f"stray brace in template {whole!r}")
    parts.append(tail)
    return parts


def _render_parts(parts: Sequence[Any], env: Mapping[str, Any], *, optional: bool) -> str | None:
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, tuple):
            out.append(_render_parts(part, env, optional=True) or "")
        else:
            value = part.expr.evaluate(env)
            if value is None:
                if optional:
                    return None
                out.append("n/a")
            else:
                out.append(_format(value, part.spec))
    return "".join(out)


def _format(value: Any, spec: str) -> str:
    if "|" in spec and not isinstance(value, (bool, str, list, tuple)):
        # "{n:,.0f|query}" -> "1 query" / "2,000 queries": the noun agrees with the number shown.
        from ..util.wording import plural

        number_spec, _, noun = spec.partition("|")
        shown = _format(value, number_spec)
        try:
            amount = float(shown.replace(",", ""))
        except ValueError:
            amount = value
        return f"{shown} {plural(noun.strip(), amount)}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return format(value.replace("_", " "), spec)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if not spec else format(len(value), spec)
    if spec:
        return format(value, spec)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3g}"
    return f"{int(value)}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _template_names(parts: Sequence[Any]) -> set[str]:
    names: set[str] = set()
    for part in parts:
        if isinstance(part, tuple):
            names |= _template_names(part)
        elif isinstance(part, _Slot):
            names |= part.expr.names
    return names
