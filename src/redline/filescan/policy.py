"""Decide what a global found in a pickle may do, from the tables in ``policy_table``."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import policy_table as table
from .values import Big, Obj, PDict, Ref, TooWide, nested_values, preview

USES = ("class", "new-only", "function", "checked", "reference")
#: Allowed functions that return their first argument as it is (TorchScript's type tags and
#: list helpers): the scan follows the argument through them.
IDENTITY_FUNCTIONS = frozenset({
    "torch.jit._pickle.restore_type_tag", "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist",
    "torch.jit._pickle.build_boollist", "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.build_complexlist",
})


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one global: allowed with a use, or flagged with a reason."""

    allowed: bool
    use: str | None = None  # for allowed globals, one of USES
    severity: str | None = None  # for flagged globals: "Critical" or "High"
    category: str = ""
    reason: str = ""
    checker: str | None = None  # name of the argument checker for use == "checked"


def _is_identifier_path(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


@functools.cache
def _allowed_exact() -> dict[tuple[str, str], Decision]:
    out = {}
    for module, name, use, reason in table.ALLOWED:
        checker = f"{module}.{name}" if use == "checked" else None
        out[(module, name)] = Decision(True, use=use, reason=reason, checker=checker)
    for module, name, reason in table.ALLOWED_CALLED_CLASSES:
        out[(module, name)] = Decision(True, use="class", reason=reason)
    return out


@functools.cache
def _denied_modules() -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = {}
    for module, name, category, reason in table.DENIED:
        out.setdefault(module, []).append((name, category, reason))
    return out


def _deny_match(module: str, qualname: str) -> tuple[str, str, str] | None:
    """The deny row for ``module.qualname`` (rows on a package cover its submodules)."""
    denied = _denied_modules()
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        rows = denied.get(".".join(parts[:cut]))
        if not rows:
            continue
        for name, category, reason in rows:
            if name == "*" or (cut == len(parts) and (qualname == name or qualname.startswith(name + "."))):
                return ".".join(parts[:cut]) + ("" if name == "*" else "." + name), category, reason
    return None


def _deny_roots() -> frozenset[str]:
    return frozenset(module.split(".")[0] for module, name, _c, _r in table.DENIED if name == "*")


_ROOTS = _deny_roots()
_SCIPY_CLASSES = frozenset(table.SCIPY_CLASSES)


def lookup(module: str, qualname: str, *, torchscript: bool = False) -> Decision:
    """The decision for ``find_class(module, qualname)``."""
    exact = _allowed_exact().get((module, qualname))
    if exact is not None:
        return exact
    if module == "torch":
        if qualname in table.TORCH_STORAGE_SIZES:
            return Decision(True, use="class", reason="typed storage class named by a tensor")
        if qualname in table.TORCH_REFERENCES:
            return Decision(True, use="reference", reason="torch dtype, layout or memory format")
    if module == "numpy" and qualname in table.NUMPY_SCALAR_TYPES:
        return Decision(True, use="class", reason="numpy scalar type")
    if module in table.NUMPY_UFUNC_MODULES and qualname in table.NUMPY_UFUNCS:
        return Decision(True, use="reference", reason="numpy ufunc (pure element-wise math), held but not called")
    if module == "numpy" and qualname in table.NUMPY_PURE_FUNCTIONS:
        return Decision(True, use="reference", reason="numpy reduction or statistic, held but not called")
    if (module, qualname) in _SCIPY_CLASSES:
        return Decision(True, use="new-only", reason="scipy sparse matrix or spline container")
    if any(module.startswith(prefix) and qualname == name for prefix, name in table.SAME_MODULE_NEW_HELPERS):
        return Decision(True, use="checked", reason="creates an instance of a class of its own module",
                        checker="same-module-new")
    if torchscript and (module == "__torch__" or module.startswith("__torch__.")) and "." not in qualname:
        return Decision(True, use="new-only", reason="TorchScript class (resolved by the TorchScript loader)")

    parts = qualname.split(".")
    escapes = [p for p in parts if p in table.ESCAPE_ATTRIBUTES or (p.startswith("__") and p.endswith("__"))]
    if len(parts) > 1 and escapes:
        return Decision(False, severity="Critical", category="gadget",
                        reason=f"attribute path walks through {escapes[0]!r} out of the named object")
    denied = _deny_match(module, qualname)
    if denied is not None:
        where, category, reason = denied
        return Decision(False, severity="Critical", category=category, reason=f"{where}: {reason}")
    if len(parts) > 1:
        for part in parts[:-1]:
            if part in _ROOTS:
                return Decision(False, severity="Critical", category="gadget",
                                reason=f"attribute path reaches module {part!r} through {module}")
        # the walk may reach a submodule or a module imported by the named one
        for cut in range(1, len(parts)):
            for base in (f"{module}.{'.'.join(parts[:cut])}", ".".join(parts[:cut])):
                inner = _deny_match(base, ".".join(parts[cut:]))
                if inner is not None:
                    return Decision(False, severity="Critical", category=inner[1],
                                    reason=f"reaches {inner[0]}: {inner[2]}")

    for prefix, reason in table.BLOCKED_PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return Decision(False, severity="High", category="unknown",
                            reason=f"{prefix} is excluded from the allowlist: {reason}")
    if len(parts) == 1 and parts[0].lstrip("_")[:1].isupper():  # a class, by naming convention
        if module in table.SKLEARN_CYTHON_CALLED_MODULES:
            return Decision(True, use="class", reason="scikit-learn Cython class rebuilt from numeric arguments")
        for prefix, reason in table.ALLOWED_CLASS_PREFIXES:
            if module.startswith(prefix):
                # admitted by its name only: it may be created without arguments and given a
                # state, never called, so a callable that merely looks like a class does nothing
                return Decision(True, use="new-only", reason=reason)
    if len(parts) == 1 and parts[0].lstrip("_")[:1].islower() and not parts[0].startswith("__"):
        for prefix in table.SKLEARN_FUNCTION_MODULES:
            if module == prefix or module.startswith(prefix + "."):
                return Decision(True, use="reference", reason="scikit-learn function kept as a parameter, not called")
    if len(parts) == 1 and parts[0].startswith("__pyx_unpickle_"):
        for prefix in table.CYTHON_UNPICKLE_PREFIXES:
            if module.startswith(prefix):
                return Decision(True, use="checked", reason="Cython unpickle helper",
                                checker="cython-unpickle")
    return Decision(False, severity="High", category="unknown", reason="unknown callable — not in the allowlist")


def storage_element_size(ref: Any) -> int | None:
    """Bytes per element of a ``torch.<X>Storage`` reference, or None."""
    if isinstance(ref, Ref) and ref.module in ("torch", "torch.storage"):
        return table.TORCH_STORAGE_SIZES.get(ref.name)
    return None


# ---- argument checkers for "checked" rows: return None when fine, else why not ----

def _allowed_class(value: Any) -> bool:
    return isinstance(value, Ref) and value.decision.allowed and value.decision.use in ("class", "new-only", "reference")


def _check_reconstructor(args: Any) -> str | None:
    if not (isinstance(args, tuple) and len(args) == 3):
        return "expects (class, base, state)"
    cls, base, state = args
    if not _allowed_class(cls) or (cls.decision.use == "reference" and cls.module != "builtins"):
        return f"class argument {preview(cls)} is not an allowed class"
    if state is not None:  # base.__init__(obj, state): a dict base takes the state's items as its own
        why = _special_keys(state)
        if why:
            return why
    if not (isinstance(base, Ref) and base.module == "builtins" and base.decision.allowed):
        return f"base argument {preview(base)} is not a plain builtin type"
    return None


def _check_newobj(args: Any) -> str | None:
    if not (isinstance(args, tuple) and args):
        return "expects a class as first argument"
    if not _allowed_class(args[0]):
        return f"class argument {preview(args[0])} is not an allowed class"
    if args[0].decision.use == "reference" and args[0].module != "builtins":
        # a held function or constant is no class: __new__ on it builds whatever it makes of
        # the arguments (functools.partial re-exported by a library binds any call)
        return f"{preview(args[0])} is held as a reference, not created"
    if args[1:] and args[0].decision.use == "new-only":
        return f"passes arguments to {preview(args[0])}.__new__, which model files create without arguments"
    return None


def _check_same_module_new(args: Any, ref: Ref | None = None) -> str | None:
    if (isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], Ref) and args[0].decision.allowed
            and args[0].decision.use in ("class", "new-only") and ref is not None and args[0].module == ref.module):
        return None
    return f"expects one allowed class of the same module, got {preview(args)}"


def _check_codecs_encode(args: Any) -> str | None:
    if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], (str, Big)) and args[1] in (
            "latin1", "latin-1", "iso-8859-1", "iso8859-1"):
        if isinstance(args[0], Big) and args[0].kind != "str":
            return "first argument is not text"
        return None
    return f"only (text, 'latin1') is expected, got {preview(args)}"


_ARRAY_CLASSES = frozenset({
    ("numpy", "ndarray"), ("numpy", "matrix"), ("numpy.matrixlib.defmatrix", "matrix"),
    ("numpy.ma.core", "MaskedArray"), ("numpy.ma", "MaskedArray"), ("numpy", "recarray"), ("numpy.rec", "recarray"),
    ("numpy.core.records", "recarray"), ("numpy._core.records", "recarray")})


def _array_class(value: Any) -> bool:
    return isinstance(value, Ref) and value.decision.allowed and (value.module, value.name) in _ARRAY_CLASSES


def _check_reconstruct(args: Any) -> str | None:
    if isinstance(args, tuple) and args and _array_class(args[0]):
        return None
    return f"first argument must be an ndarray class, got {preview(args)}"


def _check_ufunc(args: Any) -> str | None:
    # _ufunc_reconstruct(module, name) returns getattr(import(module), name): any attribute of
    # any module. Only the names of real ufuncs are accepted, so what it returns is a ufunc.
    if (isinstance(args, tuple) and len(args) == 2 and args[0] in table.NUMPY_UFUNC_MODULES
            and isinstance(args[1], str) and args[1] in table.NUMPY_UFUNCS):
        return None
    return f"returns an arbitrary module attribute; only numpy ufunc names are accepted, got {preview(args)}"


_BIT_GENERATORS = {"MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"}


def _check_random_ctor(args: Any) -> str | None:
    if not isinstance(args, tuple):
        return "expects a tuple of arguments"
    for value in args:
        if isinstance(value, str) and value in _BIT_GENERATORS:
            continue
        if isinstance(value, Ref) and value.module.startswith("numpy.random.") and value.name in _BIT_GENERATORS:
            continue
        if isinstance(value, Ref) and (value.module, value.name) == ("numpy.random._pickle", "__bit_generator_ctor"):
            continue  # the default constructor passed along (it is called with the first argument)
        if isinstance(value, Obj) and not value.dynamic and value.func is not None and (
                value.func.qualname == "numpy.random._pickle.__bit_generator_ctor"):
            continue  # numpy >= 2 passes the rebuilt bit generator itself
        return f"unexpected bit generator {preview(value)}"
    return None


def _plain_names(state: Any) -> str | None:
    if state is None:
        return None
    if not isinstance(state, PDict):
        return None if isinstance(state, (tuple, list)) and not state else "state must be a dict"
    for key, _value in state.items:
        if not isinstance(key, str) or (key.startswith("__") and key.endswith("__")):
            return f"sets attribute {preview(key)}"
    return None


def _empty_hooks(value: Any) -> bool:
    """An empty hooks mapping: backward hooks are callables that autograd calls later."""
    if isinstance(value, PDict):
        return not value.items
    return (isinstance(value, Obj) and not value.dynamic and value.cls is not None
            and (value.cls.module, value.cls.name) == ("collections", "OrderedDict")
            and value.args in ((), None) and not value.entries and value.state is None)


def _hooks_at(index: int, minimum: int) -> Callable[[Any], str | None]:
    def check(args: Any) -> str | None:
        if not (isinstance(args, tuple) and len(args) >= minimum):
            return f"expects at least {minimum} arguments"
        if len(args) > index and args[index] is not None and not _empty_hooks(args[index]):
            return f"installs backward hooks {preview(args[index])}: callables run by autograd"
        return None

    return check


def _check_parameter_with_state(args: Any) -> str | None:
    if isinstance(args, tuple) and len(args) == 4:
        return _hooks_at(2, 3)(args) or _plain_names(args[3])
    return "expects (data, requires_grad, hooks, state)"


_LAYOUT_NAMES = frozenset(f"torch.{n}" for n in ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr",
                                                 "sparse_bsc", "_mkldnn", "jagged"))


def _check_get_layout(args: Any) -> str | None:
    if isinstance(args, tuple) and len(args) == 1 and args[0] in _LAYOUT_NAMES:
        return None
    return f"only tensor layout names are expected, got {preview(args)}"


def _rebuild_fn(value: Any) -> bool:
    return isinstance(value, Ref) and value.decision.allowed and value.decision.use in ("function",) and (
        value.module in ("torch._utils", "torch._tensor"))


def _check_from_type(args: Any) -> str | None:
    if not (isinstance(args, tuple) and len(args) >= 3):
        return "expects (function, type, args, ...)"
    if not _rebuild_fn(args[0]):
        return f"rebuild function {preview(args[0])} is not an allowed torch rebuild helper"
    if not (isinstance(args[1], Ref) and args[1].decision.allowed):
        return f"tensor type {preview(args[1])} is not allowed"
    if len(args) >= 4:
        return _plain_names(args[3])
    return None


def _special_keys(value: Any) -> str | None:
    """A dunder or non-text key of a dict anywhere in ``value`` (a state a loader writes into
    ``__dict__``; ``__setstate__`` written there is called by the next BUILD)."""
    try:
        for item in nested_values(value):
            if isinstance(item, PDict):
                for key, _v in item.items:
                    if not isinstance(key, str) or (key.startswith("__") and key.endswith("__")):
                        return f"writes attribute {preview(key)} into the object"
    except TooWide as exc:
        return f"a state too wide to check ({exc})"
    return None


def held_callable(value: Any, allowed: Callable[[Ref], bool] = lambda ref: False, *, budget: int = 50_000,
                  seen: set[int] | None = None) -> Ref | None | str:
    """The first allowed-to-call global held inside ``value`` as data (not called by the
    stream), or a reason the value is too wide to look through, or None. Such a function's
    argument checks run only when the stream calls it; held, it is called later by the
    object's own code (a method shadowed by a state key, a metric callback) with whatever
    arguments the file stored beside it. ``allowed`` exempts what a checker vouches for."""
    try:
        for item in nested_values(value, budget, seen):
            if (isinstance(item, Ref) and item.decision.allowed and item.decision.use in ("checked", "function")
                    and item.qualname not in IDENTITY_FUNCTIONS and not allowed(item)):
                return item
    except TooWide as exc:
        return f"too wide to check ({exc})"
    return None


def _check_cython_unpickle(args: Any, ref: Ref | None = None) -> str | None:
    if isinstance(args, tuple) and args and isinstance(args[0], Ref) and args[0].decision.allowed and (
            ref is None or args[0].module == ref.module):
        return _special_keys(args[2]) if len(args) >= 3 else None
    return f"first argument must be an allowed class of the same module, got {preview(args[:1] if isinstance(args, tuple) else args)}"


def _check_mareconstruct(args: Any) -> str | None:
    if isinstance(args, tuple) and len(args) >= 2 and _array_class(args[0]) and _array_class(args[1]):
        return None
    return f"arguments must be array classes, got {preview(args)}"


CHECKERS: dict[str, Callable[..., str | None]] = {
    "copyreg._reconstructor": _check_reconstructor,
    "copyreg.__newobj__": _check_newobj,
    "copyreg.__newobj_ex__": _check_newobj,
    "_codecs.encode": _check_codecs_encode,
    "numpy.core.multiarray._reconstruct": _check_reconstruct,
    "numpy._core.multiarray._reconstruct": _check_reconstruct,
    "numpy.core._multiarray_umath._reconstruct": _check_reconstruct,
    "numpy._core._multiarray_umath._reconstruct": _check_reconstruct,
    "numpy.ma.core._mareconstruct": _check_mareconstruct,
    "numpy.core._ufunc_reconstruct": _check_ufunc,
    "numpy._core._ufunc_reconstruct": _check_ufunc,
    "numpy.random._pickle.__randomstate_ctor": _check_random_ctor,
    "numpy.random._pickle.__bit_generator_ctor": _check_random_ctor,
    "numpy.random._pickle.__generator_ctor": _check_random_ctor,
    "torch._utils._rebuild_parameter_with_state": _check_parameter_with_state,
    "torch._utils._rebuild_tensor_v2": _hooks_at(5, 4),
    "torch._utils._rebuild_tensor_v3": _hooks_at(5, 4),
    "torch._utils._rebuild_parameter": _hooks_at(2, 2),
    "torch._utils._rebuild_qtensor": _hooks_at(6, 5),
    "torch.serialization._get_layout": _check_get_layout,
    "numpy.random.__RandomState_ctor": _check_random_ctor,
    "torch._tensor._rebuild_from_type_v2": _check_from_type,
    "torch._tensor._rebuild_from_type": _check_from_type,
    "cython-unpickle": _check_cython_unpickle,
}


_RANDOM_CTORS = frozenset(name for name, checker in CHECKERS.items() if checker is _check_random_ctor)
_FROM_TYPE = frozenset({"torch._tensor._rebuild_from_type_v2", "torch._tensor._rebuild_from_type"})


def vouched_argument(callee: Ref, held: Ref) -> bool:
    """True when ``callee``'s argument checker accepts the function ``held`` among its
    arguments (a tensor's rebuild helper, numpy's bit-generator constructor)."""
    if callee.decision.checker in _FROM_TYPE:
        return _rebuild_fn(held)
    if callee.decision.checker in _RANDOM_CTORS:
        return held.qualname == "numpy.random._pickle.__bit_generator_ctor"
    return False


def check_call(ref: Ref, args: Any) -> str | None:
    """Why calling the allowed ``ref`` with ``args`` is outside its allowed use, or None."""
    name = ref.decision.checker
    if name == "cython-unpickle":
        return _check_cython_unpickle(args, ref)
    if name == "same-module-new":
        return _check_same_module_new(args, ref)
    checker = CHECKERS.get(name or "")
    if checker is None:  # a "checked" row without checker is a table bug: fail closed
        return "no argument check is defined for this callable"
    return checker(args)


def instance_label(ref: Ref) -> str:
    return f"{ref.qualname}(...)"


def is_state_mapping(value: Any) -> bool:
    return isinstance(value, PDict) or (isinstance(value, Obj) and value.cls is not None and (
        value.cls.module, value.cls.name) == ("collections", "OrderedDict"))
