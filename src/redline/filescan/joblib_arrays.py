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

# The type strings numpy's own dtype pickles use. Anything else is refused rather than sized
# by a guess: joblib reads exactly ``count * dtype.itemsize`` bytes, so a size the scanner got
# wrong would make it skip bytes joblib then runs as pickle opcodes, or the other way round.
_TYPESTR = re.compile(r"^[<>|=]?(?:(b1|i1|i2|i4|i8|u1|u2|u4|u8|f2|f4|f8|f16|c8|c16|c32)|(O8?)|([SUV])(\d+)|([Mm])8)$")
_FLEXIBLE_CHAR_SIZE = {"S": 1, "U": 4, "V": 1}
_HASOBJECT = 0x01  # NPY_ITEM_REFCOUNT: the dtype holds Python object pointers


def dtype_layout(dtype: Any, _known: dict[int, tuple[int, bool] | None] | None = None) -> tuple[int, bool]:
    """(itemsize, has_objects) of a simulated ``numpy.dtype(...)`` value, exactly as numpy's
    ``dtype.__setstate__`` would set them, or PickleError where that cannot be vouched for.

    Sub-dtypes are worked out once each (``_known``): a pickle can share one sub-dtype
    between the fields of every level, which read naively costs 2**levels. A dtype that
    contains itself (built through the memo) is refused."""
    known: dict[int, tuple[int, bool] | None] = {} if _known is None else _known
    if id(dtype) in known:
        done = known[id(dtype)]
        if done is None:
            raise _bad("a dtype that contains itself")
        return done
    known[id(dtype)] = None  # in progress
    known[id(dtype)] = result = _dtype_layout(dtype, known)
    return result


def _dtype_layout(dtype: Any, known: dict[int, tuple[int, bool] | None]) -> tuple[int, bool]:
    from .pickle_vm import PickleError

    if not (isinstance(dtype, Obj) and dtype.cls is not None and dtype.cls.qualname == "numpy.dtype"
            and isinstance(dtype.args, tuple) and dtype.args and isinstance(dtype.args[0], str)):
        raise PickleError(f"array dtype is not a numpy dtype: {preview(dtype)}", -1)
    match = _TYPESTR.match(dtype.args[0])
    if match is None:
        raise PickleError(f"dtype {dtype.args[0]!r} is not spelled as numpy pickles dtypes", -1)
    fixed, objects, flex, digits, _dt = match.groups()
    state = dtype.state
    if state is not None and not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                                  and all(isinstance(state[i], int) for i in (5, 6, 7))):
        raise PickleError(f"dtype state {preview(state)} is not one numpy writes", -1)
    flags = state[7] if state is not None else None
    if fixed:
        size, has_objects = int(fixed[1:]), False
    elif objects:
        size, has_objects = 8, True
    elif flex:
        size, has_objects = int(digits) * _FLEXIBLE_CHAR_SIZE[flex], False
        if state is not None:  # numpy takes a flexible dtype's size from the state
            if state[5] < 0:
                raise PickleError(f"flexible dtype with size {state[5]}", -1)
            size = state[5]
            has_objects = _parts_hold_objects(state, known)
    else:
        size, has_objects = 8, False
    if state is not None and not flex and (state[2] is not None or state[3] is not None or state[4] is not None):
        raise PickleError("a non-void dtype with fields or a subarray", -1)
    if flags is not None and bool(flags & _HASOBJECT) != has_objects:
        # numpy would trust the flags; the scanner will not guess which reading joblib makes
        raise PickleError(f"dtype flags {flags} disagree with its fields about holding objects", -1)
    return size, has_objects


def _parts_hold_objects(state: tuple, known: dict[int, tuple[int, bool] | None]) -> bool:
    subarray, names, fields = state[2], state[3], state[4]
    if subarray is not None:
        if not (isinstance(subarray, tuple) and len(subarray) == 2):
            raise _bad("malformed subarray")
        return dtype_layout(subarray[0], known)[1]
    if fields is None:
        if names is not None:
            raise _bad("names without fields")
        return False
    if not isinstance(fields, PDict) or not isinstance(names, tuple):
        raise _bad("malformed fields")
    held = False
    for _name, field in fields.items:
        if not (isinstance(field, tuple) and len(field) in (2, 3)):
            raise _bad("malformed field")
        held = dtype_layout(field[0], known)[1] or held
    return held


def _bad(what: str) -> Exception:
    from .pickle_vm import PickleError

    return PickleError(f"structured dtype: {what}", -1)


def read_wrapped_array(vm: PickleVM, wrapper: Obj, op_pos: int) -> Obj:
    """Consume the array data joblib writes after ``wrapper`` and return the array value."""
    from .pickle_vm import Mode, PickleError, PickleVM

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
        # joblib reads it with a fresh pickle._Unpickler: its own memo and stack, no array
        # hook; its opcodes still count against the file's limits and budget
        nested = PickleVM(vm.data, vm.pos, vm.end, Mode(persistent=vm.mode.persistent, pure=True), vm.report,
                          vm.limits, vm.max_opcodes - vm.result.opcodes, vm.over_budget).run()
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
