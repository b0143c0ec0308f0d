"""A simulator of the pickle machine that reports what a stream would import and call.

It follows CPython's unpickler opcode by opcode (stack, memo, marks, frames, protocols 0-5)
without importing or calling anything: globals become ``Ref`` records checked against the
policy, calls become ``Obj`` records. Every verdict comes from this simulation, so a name
that is spelled across memo entries, computed by another call or hidden behind a dotted
attribute path is resolved the same way the loader would resolve it.

The simulator stops where the real loader would raise; whatever it reported up to that
point is what the loader would already have done.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import gc
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import policy
from .limits import DEFAULT as DEFAULT_LIMITS
from .limits import Limits
from .values import Big, Obj, PDict, Persistent, PSet, Ref, preview

HIGHEST_PROTOCOL = 5
SMALL_BYTES = 256  # byte payloads up to this size are kept; larger ones are skipped
SMALL_TEXT = 4096  # text payloads up to this size are decoded; larger ones are skipped
_unpack_q = struct.Struct("<q").unpack_from
_unpack_Q = struct.Struct("<Q").unpack_from
_unpack_i = struct.Struct("<i").unpack_from
_unpack_I = struct.Struct("<I").unpack_from
_unpack_H = struct.Struct("<H").unpack_from
_unpack_d = struct.Struct(">d").unpack_from

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
CHECK_EVERY = 4096  # opcodes between looks at the opcode count and stack size
BUDGET_CHECK_EVERY = 16 * CHECK_EVERY  # ... and at the process's memory and the clock


class PickleError(Exception):
    """The loader would raise here; ``pos`` is the offset of the failing opcode."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


class PickleLimit(PickleError):
    """The scanner's own work or memory limit was reached (not a defect of the stream)."""

    def __init__(self, name: str, detail: str, pos: int) -> None:
        from .limits import ENV_VAR

        super().__init__(f"{detail} (limit {name}; raise it with --limit {name}=N or {ENV_VAR})", pos)
        self.limit = name


@dataclass
class Finding:
    severity: str
    kind: str
    detail: str


@dataclass
class RunResult:
    """What one simulated ``load()`` did."""

    start: int
    end: int | None = None  # offset just after STOP, None if the stream broke
    value: Any = None
    error: PickleError | None = None
    effects: int = 0  # imports and calls the loader would have performed
    opcodes: int = 0
    persistent_ids: list = field(default_factory=list)
    saw_joblib_wrapper: bool = False
    findings: int = 0  # findings reported so far
    findings_before_wrapper: int | None = None  # findings made before the first joblib array


@dataclass
class Mode:
    """How the stream is loaded: which loader's quirks apply."""

    persistent: str = "any"  # "any": note ids; "torch": torch's persistent_load rules
    torchscript: bool = False  # TorchScript archives resolve __torch__ classes themselves
    joblib: bool = False  # joblib's NumpyUnpickler reads array bytes after a wrapper BUILD
    pure: bool = False  # read by pickle._Unpickler (joblib), not the C unpickler: text numbers differ

    @property
    def pure_python(self) -> bool:
        return self.pure or self.joblib


def _is_identifier_path(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


class PickleVM:
    """One simulated load of one pickle stream from ``data[start:end]``."""

    def __init__(self, data: Any, start: int, end: int, mode: Mode, report: Callable[[Finding], None],
                 limits: Limits = DEFAULT_LIMITS, max_opcodes: int | None = None,
                 over_budget: Callable[[], str | None] | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = end
        self.mode = mode
        self.report = report
        self.stack: list = []
        self.metastack: list = []
        self.memo: dict = {}
        self.proto = 0
        self.frame_end: int | None = None
        self.result = RunResult(start=start)
        self._flagged: set[str] = set()
        self.limits = limits
        self.max_opcodes = limits.max_opcodes if max_opcodes is None else max_opcodes
        self.held = 0  # values on the stacks saved under open MARKs
        self.over_budget = over_budget  # the file's memory/time check, asked every 65536 opcodes
        self._held_roots: list[tuple[Any, str]] = []  # values handed to objects that keep them (see _hold)
        self.keys_checked: dict[int, tuple[Any, int]] = {}  # id(BUILD state part) -> (part, keys checked)

    # ---------------------------------------------------------------- reading
    def _need(self, n: int, what: str) -> int:
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise PickleError(f"stream truncated while reading {what}", pos)
        self.pos = pos + n
        return pos

    def _line(self, what: str) -> bytes:
        nl = self.data.find(b"\n", self.pos, self.end)
        if nl < 0:
            raise PickleError(f"stream truncated while reading {what} line", self.pos)
        line = bytes(self.data[self.pos : nl])
        self.pos = nl + 1
        return line

    def _text(self, start: int, n: int, what: str) -> str | Big:
        if n > SMALL_TEXT:
            return Big("str", n)
        try:
            return bytes(self.data[start : start + n]).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise PickleError(f"invalid UTF-8 in {what}", start) from exc

    def _bytes(self, start: int, n: int, kind: str = "bytes") -> bytes | Big:
        if n > SMALL_BYTES:
            return Big(kind, n)
        return bytes(self.data[start : start + n])

    # ---------------------------------------------------------------- stack
    def _pop(self, op_pos: int) -> Any:
        if not self.stack:
            raise PickleError("stack underflow", op_pos)
        return self.stack.pop()

    def _top(self, op_pos: int) -> Any:
        if not self.stack:
            raise PickleError("stack underflow", op_pos)
        return self.stack[-1]

    def _pop_mark(self, op_pos: int) -> list:
        if not self.metastack:
            raise PickleError("could not find MARK", op_pos)
        items = self.stack
        self.stack = self.metastack.pop()
        self.held -= len(self.stack)
        return items

    def _periodic(self, pos: int) -> int:
        """Check the work limits; returns the opcode count at which to check again. The stack
        grows by at most one value per opcode, so checking it every CHECK_EVERY opcodes
        overshoots its limit by at most that many values."""
        opcodes = self.result.opcodes
        if opcodes > self.max_opcodes:
            raise PickleLimit("max_opcodes", f"more than {self.limits.max_opcodes} pickle opcodes in the file", pos)
        if len(self.stack) + self.held > self.limits.max_stack:
            raise PickleLimit("max_stack", f"more than {self.limits.max_stack} values on the pickle stack", pos)
        if opcodes and not opcodes % BUDGET_CHECK_EVERY and self.over_budget is not None:
            self._check_budget(pos)
        return min(opcodes + CHECK_EVERY, self.max_opcodes + 1)

    def _check_budget(self, pos: int) -> None:
        name = self.over_budget()
        if name == "max_memory_bytes":
            raise PickleLimit(name, f"simulating the pickle took more than {self.limits.max_memory_bytes} bytes", pos)
        if name is not None:
            raise PickleLimit(name, f"scanning the file took more than {self.limits.max_seconds} seconds", pos)

    def _memo_put(self, idx: int, value: Any, op_pos: int) -> None:
        memo = self.memo
        if idx not in memo and len(memo) >= self.limits.max_memo:
            raise PickleLimit("max_memo", f"more than {self.limits.max_memo} memo entries", op_pos)
        memo[idx] = value

    # ---------------------------------------------------------------- findings
    def _flag(self, severity: str, kind: str, detail: str) -> None:
        self.result.findings += 1
        self.report(Finding(severity, kind, detail))

    def _find_class(self, module: str, name: str, op_pos: int) -> Ref:
        if self.proto < 3:  # the loader maps Python 2 names (fix_imports)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if not _is_identifier_path(module) or not _is_identifier_path(name) or "<locals>" in name:
            raise PickleError(f"global {module!r} {name!r} cannot be imported", op_pos)
        self.result.effects += 1
        decision = policy.lookup(module, name, torchscript=self.mode.torchscript)
        ref = Ref(module, name, decision)
        if not decision.allowed and ref.qualname not in self._flagged:
            self._flagged.add(ref.qualname)
            kind = "unsafe-global" if decision.severity == "Critical" else "unknown-global"
            self._flag(decision.severity, kind, f"imports {ref.qualname} ({decision.reason})")
        if (module, name) in (("joblib.numpy_pickle", "NumpyArrayWrapper"),
                              ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper")):
            self.result.saw_joblib_wrapper = True
        return ref

    def _call(self, callee: Any, args: Any, how: str, op_pos: int) -> Any:
        """The value of calling ``callee`` (``how`` is the opcode family)."""
        self.result.effects += 1
        if isinstance(callee, Ref):
            decision = callee.decision
            if not decision.allowed:
                self._flag(decision.severity, "unsafe-call" if decision.severity == "Critical" else "unknown-call",
                           f"calls {callee.qualname}{preview(args)}")
                return Obj(f"{callee.qualname}(...)", dynamic=True)
            use = decision.use
            if use == "checked":  # its checker reads the arguments now: they are checked now
                self._check_held(args, f"passes it to {callee.qualname}, which may call it",
                                 lambda held: policy.vouched_argument(callee, held))
            else:
                self._hold(args, f"passes it to {callee.qualname}, which may call it")
            if how == "new":  # NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args)
                if use == "new-only" and args:
                    # a class is created without arguments; __new__ with arguments builds
                    # whatever the "class" makes of them (a bound method, for instance)
                    self._flag("Medium", "unexpected-call",
                               f"passes {preview(args)} to {callee.qualname}.__new__; model files create it without arguments")
                if use in ("class", "new-only") or (use == "reference" and callee.module == "builtins"):
                    return Obj(policy.instance_label(callee), cls=callee)
                raise PickleError(f"NEWOBJ needs a class, got {callee.qualname}", op_pos)
            if use == "class":
                return Obj(policy.instance_label(callee), cls=callee, args=args)
            if use == "new-only":
                # REDUCE calls it; INST/OBJ call it too unless it is a type without
                # __getinitargs__, which cannot be known from its name
                self._flag("Medium", "unexpected-call",
                           f"calls {callee.qualname}{preview(args)}; model files create it without calling it")
                return Obj(policy.instance_label(callee), cls=callee)
            if use == "function":
                if callee.qualname in policy.IDENTITY_FUNCTIONS and args:
                    # it hands its first argument back: a dict stays a dict whose keys BUILD
                    # checks, an imported object stays one (written to, it is flagged)
                    return args[0]
                return Obj(f"{callee.qualname}(...)", func=callee, args=args)
            if use == "checked":
                why = policy.check_call(callee, args)
                if why is not None:
                    self._flag("High", "misused-global", f"calls {callee.qualname}{preview(args)}: {why}")
                    return Obj(f"{callee.qualname}(...)", func=callee, args=args)
                cls = args[0] if callee.decision.checker in ("copyreg._reconstructor", "copyreg.__newobj__",
                                                             "copyreg.__newobj_ex__", "cython-unpickle",
                                                             "same-module-new") else None
                return Obj(f"{callee.qualname}(...)", func=callee, cls=cls, args=args)
            if use == "reference" and callee.module == "builtins":
                return Obj(policy.instance_label(callee), cls=callee, args=args)
            raise PickleError(f"{callee.qualname} is not callable", op_pos)
        if isinstance(callee, Obj):
            if callee.dynamic:
                self._flag("Critical", "dynamic-call",
                           f"calls the result of {callee.label} with {preview(args)}: the callable is chosen at load time")
            else:  # model files never call what they built; its type is not known statically
                self._flag("High", "dynamic-call",
                           f"calls {callee.label}, an object built by the stream, with {preview(args)}")
            return Obj(f"({callee.label})(...)", dynamic=True)
        if isinstance(callee, Persistent):
            self._flag("Critical", "dynamic-call",
                       f"calls the persistent object {preview(callee.pid)}: the callable is supplied by the loader")
            return Obj("persistent(...)(...)", dynamic=True)
        raise PickleError(f"calls a non-callable value {preview(callee)}", op_pos)

    def _hold(self, value: Any, where: str) -> None:
        """Remember ``value``, handed to an object that keeps it, for the check at the end:
        containers can still be filled after they are handed over (a list taken back from
        the memo and appended to), and one walk over all of them enters each container once."""
        if isinstance(value, (PDict, PSet, tuple, list, Ref)) and (not isinstance(value, (tuple, list)) or value):
            self._held_roots.append((value, where))

    def _check_held_roots(self) -> None:
        seen: set[int] = set()
        budget = max(1_000_000, 4 * self.result.opcodes)  # every item is pushed by an opcode at least once
        for value, where in self._held_roots:
            held = policy.held_callable(value, budget=budget, seen=seen)
            if held is not None:
                self._report_held(held, where)
                return

    def _report_held(self, held: Ref | str, where: str) -> None:
        if isinstance(held, str):
            self._flag("High", "held-callable", f"a value {held}; {where}")
        else:
            self._flag("High", "held-callable",
                       f"holds {held.qualname} as data and {where} with arguments the file chooses (its argument "
                       f"check applies only when the stream calls it)")

    def _check_held(self, value: Any, where: str, vouched: Callable[[Ref], bool] = lambda ref: False) -> None:
        """Flag a function the policy allows only as the stream's own call, held in ``value``
        as data (``where`` says what happens to it)."""
        held = policy.held_callable(value, vouched)
        if held is not None:
            self._report_held(held, where)

    def _method_target(self, target: Any, method: str, op_pos: int, values: Any = ()) -> None:
        """APPEND/SETITEM/ADDITEMS on something that is not a plain container call its methods."""
        if isinstance(target, Obj):
            if target.dynamic:
                self.result.effects += 1
                self._flag("Critical", "dynamic-call",
                           f"calls {method} on {target.label}, an object chosen at load time")
            else:  # a method of an allowed class's instance, which keeps what it is given
                self._hold(values, f"puts it into {target.label}, whose code may call it")
            return
        if isinstance(target, Ref):
            self.result.effects += 1
            self._flag("Critical", "attribute-call",
                       f"calls {target.qualname}.{method} on the imported object itself")
            return
        if isinstance(target, Persistent):
            self._flag("Medium", "unexpected-call", f"calls {method} on persistent object {preview(target.pid)}")
            return
        raise PickleError(f"cannot {method} on {preview(target)}", op_pos)

    # ---------------------------------------------------------------- main loop
    def run(self) -> RunResult:
        result = self.result
        try:
            self._loop()
            self._check_held_roots()
        except PickleError as exc:
            result.error = exc
        except RecursionError:  # deeply nested joblib object arrays
            result.error = PickleError("nesting too deep", self.pos)
        except MemoryError:
            self.stack = self.metastack = []
            self.memo = {}
            result.error = PickleLimit("max_memory_bytes", "the simulation ran out of memory", self.pos)
        return result

    def _loop(self) -> None:
        data = self.data
        dispatch = _DISPATCH
        result = self.result
        end = self.end
        next_check = self._periodic(self.pos)
        while True:
            pos = self.pos
            if pos >= end:
                raise PickleError("stream ended without STOP", pos)
            fe = self.frame_end
            if fe is not None and pos >= fe:
                self.frame_end = None
            code = data[pos]
            self.pos = pos + 1
            handler = dispatch[code]
            if handler is None:
                raise PickleError(f"invalid opcode 0x{code:02x}", pos)
            result.opcodes += 1
            if result.opcodes >= next_check:  # one comparison per opcode; the limits are looked at in batches
                next_check = self._periodic(pos)
            if handler(self, pos):
                result.end = self.pos
                return
            if fe is not None and self.frame_end == fe and self.pos > fe and pos < fe:
                self._flag("Medium", "frame-mismatch",
                           f"opcode at offset {pos} straddles the end of its frame (pure-Python loaders reject it)")


# ---------------------------------------------------------------- opcode handlers
# Each takes (vm, pos) and returns True only for STOP.

def _op_mark(vm: PickleVM, pos: int) -> None:
    if len(vm.metastack) >= vm.limits.max_marks:
        raise PickleLimit("max_marks", f"more than {vm.limits.max_marks} MARKs open at once", pos)
    vm.held += len(vm.stack)
    vm.metastack.append(vm.stack)
    vm.stack = []


def _op_stop(vm: PickleVM, pos: int) -> bool:
    vm.result.value = vm._pop(pos)
    return True


def _op_pop(vm: PickleVM, pos: int) -> None:
    if vm.stack:
        vm.stack.pop()
    else:
        vm._pop_mark(pos)


def _op_pop_mark(vm: PickleVM, pos: int) -> None:
    vm._pop_mark(pos)


def _op_dup(vm: PickleVM, pos: int) -> None:
    vm.stack.append(vm._top(pos))


def _c_string(line: bytes, vm: PickleVM) -> bytes:
    """The C unpickler hands text arguments to C string functions, which stop at a NUL byte."""
    if vm.mode.pure_python:
        return line
    nul = line.find(b"\x00")
    return line if nul < 0 else line[:nul]


def _op_float(vm: PickleVM, pos: int) -> None:
    line = _c_string(vm._line("FLOAT"), vm)
    try:
        vm.stack.append(float(line))
    except ValueError as exc:
        raise PickleError("bad FLOAT", pos) from exc


_C_SPACE = b" \t\n\v\f\r"
_LONG_MAX = (1 << 63) - 1


def _strtol(text: bytes) -> tuple[int, int, bool]:
    """C ``strtol(text, &end, 0)``: (value, index where parsing stopped, overflowed)."""
    i, n = 0, len(text)
    while i < n and text[i] in _C_SPACE:
        i += 1
    sign = 1
    if i < n and text[i] in b"+-":
        sign = -1 if text[i] == 0x2D else 1
        i += 1
    base = 10
    if text[i : i + 1] == b"0":
        if text[i + 1 : i + 2] in (b"x", b"X") and text[i + 2 : i + 3] and text[i + 2 : i + 3] in b"0123456789abcdefABCDEF":
            base, i = 16, i + 2
        else:
            base = 8
    digits = b"0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)]
    start = i
    while i < n and text[i] in digits:
        i += 1
    if i == start:
        return 0, 0, False  # no conversion: end points at the start
    significant = text[start:i].lstrip(b"0")
    if len(significant) > 22:  # past any long in any base; int() would refuse 4,300+ digits anyway
        return 0, i, True
    value = sign * int(significant or b"0", base)
    return value, i, not (-_LONG_MAX - 1 <= value <= _LONG_MAX)


def _parse_int(line: bytes, pos: int, pure: bool = False) -> Any:
    """INT as the loader reads it (``line`` without its newline): ``pickle._Unpickler`` uses
    ``int(text, 0)``; the C unpickler runs ``strtol(text, 0)`` on the text up to a NUL (so
    ``010`` is 8 and an empty number is 0), falling back to ``int(text, 0)``."""
    if not line:
        raise PickleError("bad INT", pos)
    if pure:
        if line in (b"00", b"01"):
            return line == b"01"
        try:
            return int(line + b"\n", 0)
        except ValueError as exc:
            raise PickleError("bad INT", pos) from exc
    nul = line.find(b"\x00")
    text = line if nul < 0 else line[:nul]
    value, end, overflow = _strtol(text)
    if overflow or end < len(text):
        try:
            return int(text + b"\n", 0)
        except ValueError as exc:
            raise PickleError("bad INT", pos) from exc
    if len(line) == 2 and value in (0, 1):  # the C loader tests the length of the whole line
        return bool(value)
    return value


def _op_int(vm: PickleVM, pos: int) -> None:
    vm.stack.append(_parse_int(vm._line("INT"), pos, vm.mode.pure_python))


def _op_binint(vm: PickleVM, pos: int) -> None:
    vm.stack.append(_unpack_i(vm.data, vm._need(4, "BININT"))[0])


def _op_binint1(vm: PickleVM, pos: int) -> None:
    vm.stack.append(vm.data[vm._need(1, "BININT1")])


def _op_binint2(vm: PickleVM, pos: int) -> None:
    vm.stack.append(_unpack_H(vm.data, vm._need(2, "BININT2"))[0])


def _op_long(vm: PickleVM, pos: int) -> None:
    line = vm._line("LONG")
    if not line and not vm.mode.pure_python:
        raise PickleError("bad LONG", pos)
    if line.endswith(b"L"):
        line = line[:-1]
    try:  # both unpicklers read LONG in base 0 (0x.., 0o.., 0b.. and underscores)
        vm.stack.append(int(_c_string(line, vm), 0))
    except ValueError as exc:
        raise PickleError("bad LONG", pos) from exc


def _op_long1(vm: PickleVM, pos: int) -> None:
    n = vm.data[vm._need(1, "LONG1")]
    start = vm._need(n, "LONG1")
    vm.stack.append(int.from_bytes(vm.data[start : start + n], "little", signed=True))


def _op_long4(vm: PickleVM, pos: int) -> None:
    n = _unpack_i(vm.data, vm._need(4, "LONG4"))[0]
    if n < 0:
        raise PickleError("LONG4 with negative length", pos)
    start = vm._need(n, "LONG4")
    vm.stack.append(Big("int", n) if n > 64 else int.from_bytes(vm.data[start : start + n], "little", signed=True))


def _op_none(vm: PickleVM, pos: int) -> None:
    vm.stack.append(None)


def _op_true(vm: PickleVM, pos: int) -> None:
    vm.stack.append(True)


def _op_false(vm: PickleVM, pos: int) -> None:
    vm.stack.append(False)


def _op_binfloat(vm: PickleVM, pos: int) -> None:
    vm.stack.append(_unpack_d(vm.data, vm._need(8, "BINFLOAT"))[0])


def _quoted(line: bytes, pos: int) -> bytes:
    if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
        try:
            return codecs.escape_decode(line[1:-1])[0]
        except ValueError as exc:
            raise PickleError("bad STRING escape", pos) from exc
    raise PickleError("the STRING opcode argument must be quoted", pos)


def _op_string(vm: PickleVM, pos: int) -> None:
    vm.stack.append(_quoted(vm._line("STRING"), pos).decode("latin-1"))


def _py2_string(vm: PickleVM, start: int, n: int) -> Any:
    # Python 2 str: decoded with the loader's encoding (ASCII by default, latin-1 for numpy).
    if n > SMALL_TEXT:
        return Big("str", n)
    return bytes(vm.data[start : start + n]).decode("latin-1")


def _op_binstring(vm: PickleVM, pos: int) -> None:
    n = _unpack_i(vm.data, vm._need(4, "BINSTRING"))[0]
    if n < 0:
        raise PickleError("BINSTRING with negative length", pos)
    vm.stack.append(_py2_string(vm, vm._need(n, "BINSTRING"), n))


def _op_short_binstring(vm: PickleVM, pos: int) -> None:
    n = vm.data[vm._need(1, "SHORT_BINSTRING")]
    vm.stack.append(_py2_string(vm, vm._need(n, "SHORT_BINSTRING"), n))


def _op_unicode(vm: PickleVM, pos: int) -> None:
    line = vm._line("UNICODE")
    try:
        vm.stack.append(line.decode("raw-unicode-escape") if len(line) <= SMALL_TEXT else Big("str", len(line)))
    except UnicodeDecodeError as exc:
        raise PickleError("bad UNICODE escape", pos) from exc


def _op_binunicode(vm: PickleVM, pos: int) -> None:
    n = _unpack_I(vm.data, vm._need(4, "BINUNICODE"))[0]
    vm.stack.append(vm._text(vm._need(n, "BINUNICODE"), n, "BINUNICODE"))


def _op_binunicode8(vm: PickleVM, pos: int) -> None:
    n = _unpack_Q(vm.data, vm._need(8, "BINUNICODE8"))[0]
    vm.stack.append(vm._text(vm._need(n, "BINUNICODE8"), n, "BINUNICODE8"))


def _op_short_binunicode(vm: PickleVM, pos: int) -> None:
    n = vm.data[vm._need(1, "SHORT_BINUNICODE")]
    vm.stack.append(vm._text(vm._need(n, "SHORT_BINUNICODE"), n, "SHORT_BINUNICODE"))


def _op_binbytes(vm: PickleVM, pos: int) -> None:
    n = _unpack_I(vm.data, vm._need(4, "BINBYTES"))[0]
    vm.stack.append(vm._bytes(vm._need(n, "BINBYTES"), n))


def _op_short_binbytes(vm: PickleVM, pos: int) -> None:
    n = vm.data[vm._need(1, "SHORT_BINBYTES")]
    vm.stack.append(vm._bytes(vm._need(n, "SHORT_BINBYTES"), n))


def _op_binbytes8(vm: PickleVM, pos: int) -> None:
    n = _unpack_Q(vm.data, vm._need(8, "BINBYTES8"))[0]
    vm.stack.append(vm._bytes(vm._need(n, "BINBYTES8"), n))


def _op_bytearray8(vm: PickleVM, pos: int) -> None:
    n = _unpack_Q(vm.data, vm._need(8, "BYTEARRAY8"))[0]
    vm._need(n, "BYTEARRAY8")
    vm.stack.append(Big("bytearray", n))


def _op_next_buffer(vm: PickleVM, pos: int) -> None:
    raise PickleError("NEXT_BUFFER: the stream needs out-of-band buffers that a file cannot supply", pos)


def _op_readonly_buffer(vm: PickleVM, pos: int) -> None:
    vm._top(pos)


def _op_empty_list(vm: PickleVM, pos: int) -> None:
    vm.stack.append([])


def _op_empty_tuple(vm: PickleVM, pos: int) -> None:
    vm.stack.append(())


def _op_empty_dict(vm: PickleVM, pos: int) -> None:
    vm.stack.append(PDict())


def _op_empty_set(vm: PickleVM, pos: int) -> None:
    vm.stack.append(PSet())


def _op_list(vm: PickleVM, pos: int) -> None:
    items = vm._pop_mark(pos)  # (pop first: it replaces vm.stack)
    vm.stack.append(items)


def _op_tuple(vm: PickleVM, pos: int) -> None:
    items = tuple(vm._pop_mark(pos))
    vm.stack.append(items)


def _op_tuple_n(n: int) -> Callable[[PickleVM, int], None]:
    def handler(vm: PickleVM, pos: int) -> None:
        stack = vm.stack
        if len(stack) < n:
            raise PickleError("stack underflow", pos)
        items = tuple(stack[-n:])
        del stack[-n:]
        stack.append(items)

    return handler


def _unhashable(key: Any) -> bool:
    return isinstance(key, (list, PDict)) or (isinstance(key, PSet) and not key.frozen)


def _pairs(items: list, pos: int) -> list:
    if len(items) % 2:
        raise PickleError("odd number of items for a dict", pos)
    pairs = list(zip(items[::2], items[1::2]))
    for key, _ in pairs:
        if _unhashable(key):
            raise PickleError(f"unhashable dict key {preview(key)}", pos)
    return pairs


def _op_dict(vm: PickleVM, pos: int) -> None:
    items = PDict(_pairs(vm._pop_mark(pos), pos))
    vm.stack.append(items)


def _op_frozenset(vm: PickleVM, pos: int) -> None:
    items = PSet(vm._pop_mark(pos), frozen=True)
    vm.stack.append(items)


def _op_append(vm: PickleVM, pos: int) -> None:
    value = vm._pop(pos)
    target = vm._top(pos)
    if isinstance(target, list):
        target.append(value)
    else:
        vm._method_target(target, "append", pos, (value,))


def _op_appends(vm: PickleVM, pos: int) -> None:
    items = vm._pop_mark(pos)
    target = vm._top(pos)
    if not items and not vm.mode.pure_python:
        return  # the C loader returns before looking at the target
    if isinstance(target, list):
        target.extend(items)
    else:
        vm._method_target(target, "extend", pos, items)


def _op_setitem(vm: PickleVM, pos: int) -> None:
    value = vm._pop(pos)
    key = vm._pop(pos)
    target = vm._top(pos)
    if isinstance(target, PDict):
        if _unhashable(key):
            raise PickleError(f"unhashable dict key {preview(key)}", pos)
        target.items.append((key, value))
    else:
        _record_entries(target, [key])
        vm._method_target(target, "__setitem__", pos, (key, value))


def _op_setitems(vm: PickleVM, pos: int) -> None:
    items = vm._pop_mark(pos)
    target = vm._top(pos)
    if not items:
        return  # both loaders return before looking at the target
    pairs = _pairs(items, pos)
    if isinstance(target, PDict):
        target.items.extend(pairs)
    else:
        _record_entries(target, [k for k, _v in pairs])
        vm._method_target(target, "__setitem__", pos, pairs)


def _record_entries(target: Any, keys: list) -> None:
    if isinstance(target, Obj):
        if target.entries is None:
            target.entries = []
        target.entries.extend(keys)  # in place: a copy per SETITEM would make a long run quadratic


def _op_additems(vm: PickleVM, pos: int) -> None:
    items = vm._pop_mark(pos)
    target = vm._top(pos)
    if not items and not vm.mode.pure_python:
        return  # the C loader returns before looking at the target
    if isinstance(target, PSet) and not target.frozen:
        target.items.extend(items)
    else:
        vm._method_target(target, "add", pos, items)


def _memo_get(vm: PickleVM, idx: int, pos: int) -> None:
    try:
        vm.stack.append(vm.memo[idx])
    except KeyError:
        raise PickleError(f"memo key {idx} not found", pos) from None


def _op_get(vm: PickleVM, pos: int) -> None:
    line = _c_string(vm._line("GET"), vm)
    try:
        idx = int(line)
    except ValueError as exc:
        raise PickleError("bad GET index", pos) from exc
    _memo_get(vm, idx, pos)


def _op_binget(vm: PickleVM, pos: int) -> None:
    _memo_get(vm, vm.data[vm._need(1, "BINGET")], pos)


def _op_long_binget(vm: PickleVM, pos: int) -> None:
    _memo_get(vm, _unpack_I(vm.data, vm._need(4, "LONG_BINGET"))[0], pos)


def _op_put(vm: PickleVM, pos: int) -> None:
    line = _c_string(vm._line("PUT"), vm)
    try:
        idx = int(line)
    except ValueError as exc:
        raise PickleError("bad PUT index", pos) from exc
    if idx < 0:
        raise PickleError("negative PUT index", pos)
    vm._memo_put(idx, vm._top(pos), pos)


def _op_binput(vm: PickleVM, pos: int) -> None:
    vm._memo_put(vm.data[vm._need(1, "BINPUT")], vm._top(pos), pos)


def _op_long_binput(vm: PickleVM, pos: int) -> None:
    idx = _unpack_I(vm.data, vm._need(4, "LONG_BINPUT"))[0]
    vm._memo_put(idx, vm._top(pos), pos)


def _op_memoize(vm: PickleVM, pos: int) -> None:
    vm._memo_put(len(vm.memo), vm._top(pos), pos)


def _op_proto(vm: PickleVM, pos: int) -> None:
    proto = vm.data[vm._need(1, "PROTO")]
    if proto > HIGHEST_PROTOCOL:
        raise PickleError(f"unsupported pickle protocol {proto}", pos)
    vm.proto = proto


def _op_frame(vm: PickleVM, pos: int) -> None:
    size = _unpack_Q(vm.data, vm._need(8, "FRAME"))[0]
    if vm.pos + size > vm.end:
        raise PickleError("frame runs past the end of the stream", pos)
    if vm.frame_end is not None and vm.frame_end > pos:
        vm._flag("Medium", "frame-mismatch", f"frame at offset {pos} starts before the previous frame ended")
    vm.frame_end = vm.pos + size


def _global_line(vm: PickleVM, what: str, pos: int) -> str:
    try:
        return vm._line(what).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PickleError(f"{what} name is not UTF-8", pos) from exc


def _op_global(vm: PickleVM, pos: int) -> None:
    module = _global_line(vm, "GLOBAL module", pos)
    name = _global_line(vm, "GLOBAL name", pos)
    vm.stack.append(vm._find_class(module, name, pos))


def _op_stack_global(vm: PickleVM, pos: int) -> None:
    name = vm._pop(pos)
    module = vm._pop(pos)
    for part in (module, name):
        if isinstance(part, Obj) and _never_exact_str(part):
            # STACK_GLOBAL takes only exact str operands: an instance of another class stops the load
            raise PickleError(f"STACK_GLOBAL operand {part.label} is not a str", pos)
        if isinstance(part, Obj):  # any call result may be a str at load time
            vm.result.effects += 1
            vm._flag("Critical", "dynamic-global",
                     f"imports a global whose name is computed at load time by {part.label}")
            vm.stack.append(Obj("<global named at load time>", dynamic=True))
            return
        if isinstance(part, Persistent):
            vm._flag("Critical", "dynamic-global", "imports a global named by a persistent object")
            vm.stack.append(Obj("<global named at load time>", dynamic=True))
            return
    if not isinstance(module, str) or not isinstance(name, str):
        raise PickleError("STACK_GLOBAL requires str operands", pos)
    vm.stack.append(vm._find_class(module, name, pos))


def _never_exact_str(value: Obj) -> bool:
    """An instance of a known class other than ``str`` itself (functions' results and
    dynamic values may be anything)."""
    return (not value.dynamic and value.func is None and value.cls is not None
            and (value.cls.module, value.cls.name) != ("builtins", "str"))


def _op_inst(vm: PickleVM, pos: int) -> None:
    module = _global_line(vm, "INST module", pos)
    name = _global_line(vm, "INST name", pos)
    args = tuple(vm._pop_mark(pos))
    ref = vm._find_class(module, name, pos)
    vm.stack.append(vm._call(ref, args, "instantiate", pos))


def _op_obj(vm: PickleVM, pos: int) -> None:
    items = vm._pop_mark(pos)
    if not items:
        raise PickleError("OBJ without a class", pos)
    vm.stack.append(vm._call(items[0], tuple(items[1:]), "instantiate", pos))


def _op_reduce(vm: PickleVM, pos: int) -> None:
    args = vm._pop(pos)
    callee = vm._pop(pos)
    if not isinstance(args, tuple):
        if isinstance(args, (Obj, Persistent)):  # may be a tuple at load time
            args = ("<arguments computed at load time>",)
        else:
            raise PickleError("REDUCE arguments must be a tuple", pos)
    vm.stack.append(vm._call(callee, args, "reduce", pos))


def _op_newobj(vm: PickleVM, pos: int) -> None:
    args = vm._pop(pos)
    cls = vm._pop(pos)
    if isinstance(args, (Obj, Persistent)):
        args = ("<arguments computed at load time>",)
    elif not isinstance(args, tuple):
        raise PickleError("NEWOBJ arguments must be a tuple", pos)
    vm.stack.append(vm._call(cls, args, "new", pos))


def _op_newobj_ex(vm: PickleVM, pos: int) -> None:
    kwargs = vm._pop(pos)
    args = vm._pop(pos)
    cls = vm._pop(pos)
    if isinstance(args, (Obj, Persistent)):
        args = ("<arguments computed at load time>",)
    if isinstance(kwargs, (Obj, Persistent)):
        kwargs = PDict([("<computed>", kwargs)])
    if not isinstance(args, tuple) or not isinstance(kwargs, PDict):
        raise PickleError("NEWOBJ_EX arguments must be a tuple and a dict", pos)
    vm.stack.append(vm._call(cls, args + tuple(v for _k, v in kwargs.items), "new", pos))


def _op_build(vm: PickleVM, pos: int) -> None:
    state = vm._pop(pos)
    inst = vm._top(pos)
    if isinstance(inst, Ref):
        vm.result.effects += 1
        vm._flag("Critical", "attribute-write",
                 f"BUILD sets attributes on the imported object {inst.qualname} with {preview(state)}")
        return
    if isinstance(inst, Obj):
        if inst.dynamic:  # its maker is already reported; its __setstate__ is whatever it is
            vm.result.effects += 1
            return
        _check_state_keys(vm, inst, state)
        vm._hold(state, f"writes it into {inst.label}, whose code may call it (a method it calls while "
                        f"loading can be shadowed by a state key)")
        inst.state = state
        if inst.cls is not None and inst.cls.name == "NumpyArrayWrapper" and vm.result.findings_before_wrapper is None:
            vm.result.findings_before_wrapper = vm.result.findings
        if vm.mode.joblib and inst.cls is not None and inst.cls.name == "NumpyArrayWrapper":
            from .joblib_arrays import read_wrapped_array

            vm.stack[-1] = read_wrapped_array(vm, inst, pos)
        return
    if isinstance(inst, Persistent):
        vm._flag("Medium", "unexpected-call", f"BUILD on persistent object {preview(inst.pid)}")
        return
    # a plain value has no __dict__; the loaders skip an empty state before looking for one
    # (the C loader only None, pickle._Unpickler any false value)
    if state is None or (vm.mode.pure_python and _is_empty_literal(state)):
        return
    raise PickleError(f"BUILD on {preview(inst)}, which has no state to set", pos)


def _is_empty_literal(value: Any) -> bool:
    if isinstance(value, (PDict, PSet)):
        return not value.items
    return isinstance(value, (bool, int, float, str, bytes, list, tuple)) and not value


def _state_keys(vm: PickleVM, state: Any) -> tuple[list, Obj | None]:
    """Keys BUILD writes into the object: a dict state goes to ``__dict__`` (where a
    ``__setstate__`` entry is called by the next BUILD), a (dict, slots) pair to both.
    Only keys not yet checked are returned: keys are only ever appended, and one large
    state BUILT again and again must not cost (BUILDs x keys). The second item is a part
    of the state built by a call whose keys the file does not show, or None."""
    keys: list = []
    hidden = None
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, PDict):
            written, pairs = part.items, True
        elif isinstance(part, Obj) and part.entries:
            written, pairs = part.entries, False
        else:
            if _may_be_hidden_mapping(part):
                hidden = part
            continue
        _held, done = vm.keys_checked.get(id(part), (part, 0))
        vm.keys_checked[id(part)] = (part, len(written))  # the part is held so its id stays its own
        new = written[done:]
        keys.extend([k for k, _v in new] if pairs else new)
    return keys, hidden


_MAPPING_CLASSES = frozenset({("builtins", "dict"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
                              ("collections", "Counter")})


def _may_be_hidden_mapping(part: Any) -> bool:
    """A state part whose keys the stream does not show: a mapping class called with
    arguments (``dict(pairs)``), or what a function returned, whose type is not known.
    An instance of a known class other than a mapping is no mapping: BUILD cannot spread it
    into ``__dict__`` (only a ``__setstate__`` of the class takes it)."""
    if not isinstance(part, Obj) or part.dynamic:  # a dynamic value is reported where it is made
        return False
    if part.cls is None:
        return part.func is not None
    return (part.cls.module, part.cls.name) in _MAPPING_CLASSES and bool(part.args)


def _check_state_keys(vm: PickleVM, inst: Obj, state: Any) -> None:
    keys, hidden = _state_keys(vm, state)
    if hidden is not None:
        vm._flag("High", "attribute-write",
                 f"BUILD on {inst.label} with a state made at load time by {hidden.label}: the attributes it "
                 f"writes (a __setstate__ among them, called by the next BUILD) cannot be read from the file")
    for key in keys:
        if not isinstance(key, str):
            vm._flag("High", "attribute-write", f"BUILD on {inst.label} sets a non-text attribute {preview(key)}")
        elif key.startswith("__") and key.endswith("__"):
            severity = "Critical" if key in ("__setstate__", "__reduce__", "__reduce_ex__", "__class__") else "High"
            vm._flag(severity, "attribute-write",
                     f"BUILD on {inst.label} writes special attribute {key!r}"
                     + (": the next BUILD would call it" if key == "__setstate__" else ""))


def _ext(width: int) -> Callable[[PickleVM, int], None]:
    def handler(vm: PickleVM, pos: int) -> None:
        start = vm._need(width, "EXT")
        code = int.from_bytes(vm.data[start : start + width], "little")
        vm.result.effects += 1
        vm._flag("Critical", "extension-code",
                 f"EXT{width} {code}: imports whatever the loading process registered under extension code {code}")
        vm.stack.append(Obj(f"<extension {code}>", dynamic=True))

    return handler


def _persistent(vm: PickleVM, pid: Any, pos: int) -> None:
    vm.result.persistent_ids.append(pid)
    if vm.mode.persistent == "torch":
        kind = pid[0] if isinstance(pid, tuple) and pid else None
        if kind == "storage" and len(pid) >= 5:
            vm.stack.append(Persistent(pid))
            return
        if kind == "module" and len(pid) >= 2:
            vm.stack.append(pid[1])  # torch returns the class recorded in the id
            return
        raise PickleError(f"persistent id {preview(pid)} is not one PyTorch can load", pos)
    vm.stack.append(Persistent(pid))


def _op_persid(vm: PickleVM, pos: int) -> None:
    line = vm._line("PERSID")
    try:
        pid = line.decode("ascii")
    except UnicodeDecodeError as exc:
        raise PickleError("PERSID id is not ASCII", pos) from exc
    _persistent(vm, pid, pos)


def _op_binpersid(vm: PickleVM, pos: int) -> None:
    _persistent(vm, vm._pop(pos), pos)


_DISPATCH: list = [None] * 256
for _code, _fn in {
    b"(": _op_mark, b".": _op_stop, b"0": _op_pop, b"1": _op_pop_mark, b"2": _op_dup,
    b"F": _op_float, b"I": _op_int, b"J": _op_binint, b"K": _op_binint1, b"L": _op_long,
    b"M": _op_binint2, b"N": _op_none, b"P": _op_persid, b"Q": _op_binpersid, b"R": _op_reduce,
    b"S": _op_string, b"T": _op_binstring, b"U": _op_short_binstring, b"V": _op_unicode,
    b"X": _op_binunicode, b"a": _op_append, b"b": _op_build, b"c": _op_global, b"d": _op_dict,
    b"}": _op_empty_dict, b"e": _op_appends, b"g": _op_get, b"h": _op_binget, b"i": _op_inst,
    b"j": _op_long_binget, b"l": _op_list, b"]": _op_empty_list, b"o": _op_obj, b"p": _op_put,
    b"q": _op_binput, b"r": _op_long_binput, b"s": _op_setitem, b"t": _op_tuple, b")": _op_empty_tuple,
    b"u": _op_setitems, b"G": _op_binfloat,
    b"\x80": _op_proto, b"\x81": _op_newobj, b"\x82": _ext(1), b"\x83": _ext(2), b"\x84": _ext(4),
    b"\x85": _op_tuple_n(1), b"\x86": _op_tuple_n(2), b"\x87": _op_tuple_n(3), b"\x88": _op_true,
    b"\x89": _op_false, b"\x8a": _op_long1, b"\x8b": _op_long4,
    b"B": _op_binbytes, b"C": _op_short_binbytes,
    b"\x8c": _op_short_binunicode, b"\x8d": _op_binunicode8, b"\x8e": _op_binbytes8,
    b"\x8f": _op_empty_set, b"\x90": _op_additems, b"\x91": _op_frozenset, b"\x92": _op_newobj_ex,
    b"\x93": _op_stack_global, b"\x94": _op_memoize, b"\x95": _op_frame,
    b"\x96": _op_bytearray8, b"\x97": _op_next_buffer, b"\x98": _op_readonly_buffer,
}.items():
    _DISPATCH[_code[0]] = _fn

OPCODE_BYTES = frozenset(i for i, fn in enumerate(_DISPATCH) if fn is not None)


def run_pickle(data: Any, start: int, end: int, mode: Mode, report: Callable[[Finding], None],
               budget: Any = None) -> RunResult:
    """Simulate one ``load()`` of the stream at ``data[start:end]``; ``budget`` (a
    ``limits.Budget``) is charged with its opcodes, so all pickles of a file share one bound."""
    enabled = gc.isenabled()
    gc.disable()  # the simulation allocates millions of small containers: collections cost more than they free
    try:
        if budget is None:
            return PickleVM(data, start, end, mode, report).run()
        vm = PickleVM(data, start, end, mode, report, budget.limits, budget.opcodes_left(), budget.exceeded)
        result = vm.run()
    finally:
        if enabled:
            gc.enable()
    budget.spend_opcodes(result.opcodes)
    return result
