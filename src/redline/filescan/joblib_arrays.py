"""joblib's inline arrays: after the BUILD of a ``NumpyArrayWrapper`` joblib reads the array
bytes (or, for object arrays, a nested pickle) straight from the file, then resumes the
pickle stream. The simulator does the same so that those bytes are neither run as opcodes
nor skipped unread."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .values import Obj, PDict, preview

if TYPE_CHECKING:  # pragma: no cover
    from .pickle_vm import PickleVM

_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z?])(\d*)")
_FIXED = {"?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8,
          "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "O": 8, "M": 8, "m": 8}


def dtype_layout(dtype: Any, _known: dict[int, tuple[int, bool]] | None = None) -> tuple[int, bool]:
    """(itemsize, has_objects) of a simulated ``numpy.dtype(...)`` value. Field dtypes are
    worked out once each (``_known``): a pickle can share one sub-dtype between fields at
    every level, which read naively costs 2**levels."""
    known = {} if _known is None else _known
    if id(dtype) in known:
        return known[id(dtype)]
    known[id(dtype)] = result = _dtype_layout(dtype, known)
    return result


def _dtype_layout(dtype: Any, known: dict[int, tuple[int, bool]]) -> tuple[int, bool]:
    from .pickle_vm import PickleError

    if not (isinstance(dtype, Obj) and dtype.cls is not None and dtype.cls.qualname == "numpy.dtype"
            and isinstance(dtype.args, tuple) and dtype.args and isinstance(dtype.args[0], str)):
        raise PickleError(f"array dtype is not a numpy dtype: {preview(dtype)}", -1)
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    has_objects = False
    if len(state) >= 8 and isinstance(state[7], int):
        has_objects = bool(state[7] & 1)  # NPY_ITEM_REFCOUNT: the dtype holds Python objects
    if len(state) >= 5 and isinstance(state[4], PDict):
        for _name, field in state[4].items:
            if isinstance(field, tuple) and field and dtype_layout(field[0], known)[1]:
                has_objects = True
    match = _TYPESTR.match(dtype.args[0])
    if match is None:
        raise PickleError(f"unknown dtype {dtype.args[0]!r}", -1)
    kind, digits = match.groups()
    if kind == "O":
        has_objects = True
    elsize = state[5] if len(state) >= 6 and isinstance(state[5], int) and state[5] > 0 else None
    if elsize is not None:
        return elsize, has_objects
    if digits:
        size = int(digits)
        return (size * 4 if kind == "U" else size), has_objects
    if kind in _FIXED:
        return _FIXED[kind], has_objects
    raise PickleError(f"cannot size dtype {dtype.args[0]!r}", -1)


def read_wrapped_array(vm: PickleVM, wrapper: Obj, op_pos: int) -> Obj:
    """Consume the array data joblib writes after ``wrapper`` and return the array value."""
    from .pickle_vm import PickleError, PickleVM

    state = wrapper.state
    if not isinstance(state, PDict):
        raise PickleError("NumpyArrayWrapper state is not a dict", op_pos)
    if vm.frame_end is not None and vm.pos < vm.frame_end:
        # joblib reads from the file, i.e. after the current frame, while the stream goes on
        # inside it: the two readers would disagree about what the bytes mean.
        vm._flag("Medium", "frame-mismatch", f"joblib array data at offset {vm.pos} lies inside a pickle frame")
        raise PickleError("joblib array data inside a frame", op_pos)
    vm.frame_end = None  # the frame ended with the wrapper; the array bytes are outside it
    shape = state.get("shape")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise PickleError(f"NumpyArrayWrapper shape is not a tuple of sizes: {preview(shape)}", op_pos)
    try:
        itemsize, has_objects = dtype_layout(state.get("dtype"))
    except PickleError as exc:
        raise PickleError(str(exc), op_pos) from None
    count = 1
    for n in shape:
        count *= n
    if has_objects:  # a complete nested pickle stream follows
        nested = PickleVM(vm.data, vm.pos, vm.end, vm.mode, vm.report, vm.limits,
                          vm.max_opcodes - vm.result.opcodes, vm.over_budget).run()
        vm.result.effects += nested.effects
        vm.result.opcodes += nested.opcodes
        vm.result.persistent_ids.extend(nested.persistent_ids)
        if nested.error is not None:
            raise nested.error
        vm.pos = nested.end
        return Obj("ndarray(objects, joblib)")
    align = state.get("numpy_array_alignment_bytes")
    if isinstance(align, int) and align:
        padding = vm.data[vm._need(1, "joblib padding length")]
        vm._need(padding, "joblib padding")
    vm._need(count * itemsize, f"joblib array data ({count} x {itemsize} bytes)")
    return Obj("ndarray(joblib)")
