"""The four classes of scanner bypass (issue 21), each reproduced with hand-built files.

Payload streams are assembled and never unpickled by the test process; the ones whose payload
is confirmed under the real loaders run in test_filescan_differential.py.
"""
import io
import json
import pickle
import struct
import sys
import tarfile
import time

import numpy as np
import pytest
from filescan_asm import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWOBJ,
    PROTO,
    REDUCE,
    SETITEM,
    STOP,
    TUPLE,
    call,
    glob,
    sstr,
    string0,
    zip_bytes,
)

from redline.filescan.pickle_vm import Mode, PickleError, _parse_int, run_pickle


def _holder() -> bytes:
    return glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE


# ------------------------------------------------------------------ 1. gadget chains
def test_ufunc_reconstruct_reaches_only_ufuncs(scan, check):
    fetch = call(glob("numpy.core", "_ufunc_reconstruct"), string0("numpy"), string0("savez"))
    check(scan(PROTO(2) + fetch + STOP), "unsafe", "only numpy ufunc names", kinds=["misused-global"])
    other_module = call(glob("numpy._core", "_ufunc_reconstruct"), string0("numpy.lib._npyio_impl"), string0("log1p"))
    check(scan(PROTO(2) + other_module + STOP), "unsafe", kinds=["misused-global"])
    honest = call(glob("numpy.core", "_ufunc_reconstruct"), string0("numpy"), string0("log1p"))
    check(scan(PROTO(2) + honest + STOP), "safe")


def test_setstate_installed_by_a_dict_state_is_unsafe(scan, check):
    fetch = call(glob("numpy.core", "_ufunc_reconstruct"), string0("numpy"), string0("log1p"))
    chain = (_holder() + EMPTY_DICT + sstr("__setstate__") + fetch + SETITEM + BUILD
             + string0("/tmp/x") + BUILD)
    check(scan(PROTO(2) + chain + STOP), "unsafe", "__setstate__", kinds=["attribute-write"])
    # the same key hidden in an OrderedDict used as the state
    state = _holder() + sstr("__setstate__") + fetch + SETITEM
    check(scan(PROTO(2) + _holder() + state + BUILD + STOP), "unsafe", "__setstate__")
    plain = _holder() + EMPTY_DICT + sstr("coef_") + fetch + SETITEM + BUILD
    check(scan(PROTO(2) + plain + STOP), "safe")


def test_identity_helpers_do_not_launder_a_state_or_an_imported_object(scan, check):
    # restore_type_tag(value, tag) returns value: a dict passed through it is still read for
    # the keys BUILD writes, and an imported object passed through it is still imported.
    tag = glob("torch.jit._pickle", "restore_type_tag")
    fetch = call(glob("numpy.core", "_ufunc_reconstruct"), string0("numpy"), string0("log1p"))
    laundered = call(tag, EMPTY_DICT + sstr("__setstate__") + fetch + SETITEM, b"N")
    check(scan(PROTO(2) + _holder() + laundered + BUILD + string0("x") + BUILD + STOP), "unsafe", "__setstate__",
          kinds=["attribute-write"])
    module = call(tag, glob("sklearn.metrics._scorer", "np"), b"N")
    patch = EMPTY_DICT + sstr("savez") + b"K\x01" + SETITEM
    check(scan(PROTO(2) + module + patch + BUILD + STOP), "unsafe", "imported object", kinds=["attribute-write"])
    for helper in ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist"):
        hidden = call(glob("torch.jit._pickle", helper), EMPTY_DICT + sstr("__setstate__") + fetch + SETITEM)
        check(scan(PROTO(2) + _holder() + hidden + BUILD + STOP), "unsafe", "__setstate__")
    honest = call(tag, EMPTY_DICT + sstr("weight") + string0("w") + SETITEM, string0("Dict[str, str]"))
    check(scan(PROTO(2) + _holder() + honest + BUILD + STOP), "safe")


def test_a_state_whose_keys_the_file_does_not_show_is_unsafe(scan, check):
    # dict(pairs) or OrderedDict(pairs) as the state: the keys are made at load time
    pairs = b"]" + MARK + sstr("__setstate__") + sstr("v") + TUPLE + b"a"  # [("__setstate__", "v")]
    for cls in (glob("collections", "OrderedDict"), glob("builtins", "dict")):
        check(scan(PROTO(2) + _holder() + call(cls, pairs) + BUILD + STOP), "unsafe", "made at load time",
              kinds=["attribute-write"])


def test_a_held_function_is_never_created_with_arguments(scan, check):
    # sklearn.metrics._scorer re-exports functools.partial; __newobj__(partial, f, *args)
    # would build a call of any allowed function with any arguments, run by a later BUILD.
    partial = call(glob("copyreg", "__newobj__"), glob("sklearn.metrics._scorer", "partial"),
                   glob("numpy.core", "_ufunc_reconstruct"), string0("helper"))
    check(scan(PROTO(2) + partial + STOP), "unsafe", "held as a reference", kinds=["misused-global"])
    rebuilt = call(glob("copyreg", "_reconstructor"), glob("sklearn.metrics._scorer", "partial"),
                   glob("builtins", "object"), b"N")
    check(scan(PROTO(2) + rebuilt + STOP), "unsafe", "not an allowed class", kinds=["misused-global"])


def test_a_function_allowed_only_as_the_stream_s_call_is_never_held_as_data(scan, check):
    # IsotonicRegression.__setstate__ calls self._build_f(...): a state key shadows the method
    # with _ufunc_reconstruct, whose check (ufunc names only) runs only when the stream calls it.
    fetch = glob("numpy.core", "_ufunc_reconstruct")
    iso = glob("sklearn.isotonic", "IsotonicRegression") + EMPTY_TUPLE + NEWOBJ
    state = (EMPTY_DICT + sstr("X_thresholds_") + sstr("helper") + SETITEM + sstr("y_thresholds_") + sstr("x")
             + SETITEM + sstr("_build_f") + fetch + SETITEM)
    check(scan(PROTO(2) + iso + state + BUILD + STOP), "unsafe", "_ufunc_reconstruct as data",
          kinds=["held-callable"])
    # passed to a class that is called with arguments (a metric callback)
    tree = call(glob("sklearn.neighbors._ball_tree", "BallTree"), b"]", b"K\x01", fetch)
    check(scan(PROTO(2) + tree + STOP), "unsafe", kinds=["held-callable"])
    # put into an object by SETITEM, and into a list after the list was handed over
    check(scan(PROTO(2) + _holder() + sstr("f") + fetch + SETITEM + STOP), "unsafe", kinds=["held-callable"])
    late = (iso + EMPTY_DICT + sstr("items") + b"]" + b"q\x07" + SETITEM + BUILD + b"h\x07" + fetch + b"a" + b"0"
            + STOP)
    check(scan(PROTO(2) + late), "unsafe", kinds=["held-callable"])
    plain = iso + EMPTY_DICT + sstr("increasing") + b"\x88" + SETITEM + BUILD
    check(scan(PROTO(2) + plain + STOP), "safe")


def test_a_reconstructed_mapping_s_state_is_read_for_special_keys(scan, check):
    # copyreg._reconstructor(cls, dict, state) hands the state to dict.__init__: the
    # instance's items, then BUILD's state, whatever the class is called
    fetch = call(glob("numpy.core", "_ufunc_reconstruct"), string0("numpy"), string0("log1p"))
    for cls in (glob("sklearn.pipeline", "Counter"), glob("sklearn.utils._bunch", "Bunch")):
        mapping = call(glob("copyreg", "_reconstructor"), cls, glob("builtins", "dict"),
                       EMPTY_DICT + sstr("__setstate__") + fetch + SETITEM)
        check(scan(PROTO(2) + _holder() + mapping + BUILD + STOP), "unsafe", "__setstate__")


def test_shared_references_in_a_state_cost_one_visit_each(scan, check):
    # a four-level tuple whose every level holds 1,000 memo references to the level below:
    # 10^12 paths, walked as 4,000 items
    stream = sstr("leaf") + b"q\x00"
    for depth in range(1, 5):
        stream += MARK + (b"h" + bytes([depth - 1])) * 1000 + TUPLE + b"q" + bytes([depth]) + b"0"
    cython = call(glob("sklearn._cyutility", "__pyx_unpickle_Enum"), glob("sklearn._cyutility", "Enum"), b"K\x01",
                  b"h\x04")
    started = time.perf_counter()
    check(scan(PROTO(2) + stream + cython + STOP), "safe")
    assert time.perf_counter() - started < 20


def test_class_admitted_by_name_is_never_called(scan, check):
    cls = glob("sklearn.linear_model._logistic", "LogisticRegression")
    check(scan(PROTO(2) + cls + EMPTY_TUPLE + NEWOBJ + STOP), "safe")
    with_args = cls + MARK + sstr("x") + sstr("y") + TUPLE + NEWOBJ
    check(scan(PROTO(2) + with_args + STOP), "unsafe", "__new__", kinds=["unexpected-call"])
    newobj_helper = call(glob("copyreg", "__newobj__"), cls, sstr("bound"), sstr("self"))
    check(scan(PROTO(2) + newobj_helper + STOP), "unsafe", kinds=["misused-global"])
    # OBJ/INST call their class unless it is a type: a callable with a class-like name is run
    check(scan(MARK + cls + b"o" + STOP), "unsafe", kinds=["unexpected-call"])
    check(scan(MARK + b"isklearn.utils\nSomething\n" + STOP), "unsafe", kinds=["unexpected-call"])


def test_random_state_ctor_calls_only_bit_generators(scan, check):
    ctor = glob("numpy.random._pickle", "__randomstate_ctor")
    evil = call(ctor, string0("MT19937"), glob("sklearn.linear_model._logistic", "LogisticRegression"))
    check(scan(PROTO(2) + evil + STOP), "unsafe", kinds=["misused-global"])
    alias = call(glob("numpy.random", "__RandomState_ctor"), string0("MT19937"), glob("numpy.random._pickle", "__randomstate_ctor"))
    check(scan(PROTO(2) + alias + STOP), "unsafe", kinds=["misused-global"])
    check(scan(PROTO(2) + call(ctor, string0("MT19937")) + STOP), "safe")


def test_backward_hooks_and_layout_lookup(scan, check):
    rebuild = glob("torch._utils", "_rebuild_parameter")
    hooks = _holder() + sstr("k") + glob("numpy", "log1p") + SETITEM
    check(scan(PROTO(2) + call(rebuild, b"N", b"\x88", hooks) + STOP), "unsafe", "backward hooks")
    check(scan(PROTO(2) + call(rebuild, b"N", b"\x88", _holder()) + STOP), "safe")
    layout = glob("torch.serialization", "_get_layout")
    check(scan(PROTO(2) + call(layout, string0("torch.sparse_coo")) + STOP), "safe")
    check(scan(PROTO(2) + call(layout, string0("os")) + STOP), "unsafe", kinds=["misused-global"])
    check(scan(PROTO(2) + glob("torch.serialization", "load") + STOP), "unsafe")


# ------------------------------------------------------------------ 2. format confusion
def _payload() -> bytes:
    return PROTO(2) + call(glob("builtins", "open"), string0("x"), string0("w")) + STOP


def test_pickle_with_hdf5_signature_at_an_offset(scan, check):
    data = _payload().ljust(512, b"\0") + b"\x89HDF\r\n\x1a\n" + bytes(64)
    check(scan(data, "m.h5"), "unsafe", "builtins.open")


def test_pickle_in_a_valid_tar_header(scan, check):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"d"))
    data = bytearray(out.getvalue())
    data[:100] = _payload().ljust(100, b"\0")
    data[148:156] = b" " * 8
    data[148:156] = f"{sum(data[:512]):06o}\x00 ".encode()
    check(scan(bytes(data), "m.tar"), "unsafe", "builtins.open")


@pytest.mark.parametrize("prefix", [b"L0x10L\n0", b"I12\x00x\n0", b"F1.5\x00x\n0", b"I010\n0"])
def test_first_opcode_read_as_cpython_does(scan, check, prefix):
    body = call(glob("builtins", "open"), string0("x"), string0("w")) + STOP
    check(scan(prefix + body, "notes.txt"), "unsafe", "builtins.open")


def _lambda_config() -> dict:
    return {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "lam", "function_type": "lambda", "function": "..."}}]}}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32-le"])
def test_keras_config_in_any_unicode_json_encoding(scan, check, encoding):
    raw = json.dumps(_lambda_config()).encode(encoding)
    assert json.loads(raw)  # json.loads(bytes), as Keras reads config.json, accepts it
    archive = zip_bytes({"metadata.json": b"{}", "config.json": raw, "model.weights.h5": b""})
    check(scan(archive, "m.keras"), "unsafe", "Lambda layer 'lam'")
    check(scan(raw, "config.json"), "unsafe", "Lambda layer 'lam'")


def test_config_json_checked_in_any_zip(scan, check):
    archive = zip_bytes({"config.json": json.dumps(_lambda_config()).encode()})
    check(scan(archive, "m.zip"), "unsafe", "Lambda")


# ------------------------------------------------------------------ 3. parser differentials
INT_TEXTS = [b"0", b"1", b"00", b"01", b"010", b"0x1f", b"0X1F", b" 7", b"+1", b"-0", b"-1", b"1_000", b"12\x00junk",
             b"0o17", b"0b101", b"99999999999999999999", b"0x", b"", b"  ", b"1 ", b"08", b"0x1g", b"\t3", b"--1",
             b"9223372036854775808", b"-9223372036854775809", b"007", b"\x00f01", b"0\x00", b"1\x00", b"0x1\x00z"]


def _loader_value(opcode: bytes, text: bytes, loads):
    try:
        return ("ok", loads(opcode + text + b"\n."))
    except Exception:
        return ("error", None)


def _scanner_value(opcode: bytes, text: bytes, mode: Mode):
    data = opcode + text + b"\n."
    run = run_pickle(data, 0, len(data), mode, lambda f: None)
    return ("error", None) if run.error is not None else ("ok", run.value)


@pytest.mark.parametrize("opcode", [b"I", b"L"])
def test_text_numbers_match_both_unpicklers(opcode):
    for text in INT_TEXTS:
        for loads, mode in ((pickle.loads, Mode()), (pickle._loads, Mode(pure=True))):
            want = _loader_value(opcode, text, loads)
            got = _scanner_value(opcode, text, mode)
            assert got == want and type(got[1]) is type(want[1]), (opcode, text, mode, got, want)


def _mutants(seed: int, count: int):
    """Data-only pickles (no globals) with random edits: bytes changed, inserted or dropped."""
    import random

    rng = random.Random(seed)
    objs = [1, -5, 2**70, 3.5, "abc", b"xy", [1, 2], (1, "a"), {"k": [1, 2.0]}, {1, 2}, frozenset([3]), True, None]
    seeds = [pickle.dumps(o, protocol=p) for o in objs for p in range(6)]
    alphabet = b"0123456789abcdefx_-+ \x00\nLIF'\".()tlsdpqgahKeu\x90b2"
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        i = rng.randrange(len(data))
        roll = rng.random()
        if roll < 0.3:
            data[i] = rng.randrange(256)
        elif roll < 0.8:
            data[i:i] = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 4)))
        else:
            del data[i]
        yield bytes(data)


def test_scanner_never_rejects_what_the_loaders_accept():
    """Whatever the C unpickler (pickle.loads) or joblib's pickle._Unpickler loads, the
    simulator must read to the end too: a stream it rejects could be taken for text."""
    rejected = []
    for data in _mutants(seed=1, count=4000):
        for loads, mode in ((pickle.loads, Mode()), (pickle._loads, Mode(pure=True))):
            try:
                loads(data)
            except Exception:
                continue
            run = run_pickle(data, 0, len(data), mode, lambda f: None)
            if run.error is not None and not (mode.pure and "frame runs past" in str(run.error)):
                rejected.append((data, mode.pure, str(run.error)))
    assert not rejected, rejected[:5]


@pytest.mark.parametrize("prefix", [b"K\x01(e0", b"K\x01(\x900", b"}(u0", b"N2b0", b"I\x00f\n0"])
def test_no_op_first_opcodes_do_not_hide_a_payload(scan, check, prefix):
    body = call(glob("builtins", "open"), string0("x"), string0("w")) + STOP
    check(scan(prefix + body, "notes.txt"), "unsafe", "builtins.open")


def test_parse_int_rejects_what_cpython_rejects():
    with pytest.raises(PickleError):
        _parse_int(b"0x", 0)
    assert _parse_int(b"010", 0) == 8 and _parse_int(b"010", 0, pure=False) == 8


def _dtype_obj(dtype_pickle: bytes):
    run = run_pickle(dtype_pickle, 0, len(dtype_pickle), Mode(), lambda f: None)
    assert run.error is None
    return run.value


@pytest.mark.parametrize("spec", ["f8", "<i4", "u2", "b1", "c16", "O", "U3", "S5", "V4", "M8[ns]",
                                  [("a", "<i4"), ("b", "O")], [("a", "<i4"), ("b", "<f8", (2,))]])
def test_joblib_dtype_sizes_match_numpy(spec):
    from redline.filescan.joblib_arrays import dtype_layout

    dtype = np.dtype(spec)
    raw = pickle.dumps(dtype, protocol=2)
    assert dtype_layout(_dtype_obj(raw)) == (dtype.itemsize, dtype.hasobject)


@pytest.mark.parametrize("elsize", [1, 4, 16])
@pytest.mark.parametrize("spec", ["f8", "i2", "S5", "U2", "V4"])
def test_joblib_dtype_state_sizes_match_numpy(spec, elsize):
    """A pickled dtype state may carry any element size: numpy's __setstate__ uses it only
    for flexible types, and the scanner must agree byte for byte."""
    from redline.filescan.joblib_arrays import dtype_layout

    _cls, args, state = np.dtype(spec).__reduce__()
    patched = tuple(state[:5]) + (elsize,) + tuple(state[6:])
    truth = np.dtype(*args)
    truth.__setstate__(patched)
    obj = _dtype_obj(pickle.dumps(np.dtype(spec), protocol=2))
    obj.state = patched
    assert dtype_layout(obj) == (truth.itemsize, truth.hasobject)


def test_joblib_dtype_spellings_numpy_does_not_pickle_are_refused():
    from redline.filescan.joblib_arrays import dtype_layout

    obj = _dtype_obj(pickle.dumps(np.dtype("f8"), protocol=2))
    for spelling in ("float64", "d", "f8junk", "int", "l"):
        obj.args = (spelling, False, True)
        with pytest.raises(PickleError):
            dtype_layout(obj)
    obj.args = ("O8", False, True)
    obj.state = (3, "|", None, None, None, -1, -1, 0)  # object dtype whose flags say "no objects"
    with pytest.raises(PickleError):
        dtype_layout(obj)


def _zip64(data: bytes, point_to_shift: int = 0) -> bytes:
    """Insert a zip64 end record and locator before the end record of ``data``."""
    eocd = data.rfind(b"PK\x05\x06")
    _sig, _d, _cd, n_disk, n_total, cd_size, cd_offset, _c = struct.unpack_from("<4sHHHHIIH", data, eocd)
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n_disk, n_total, cd_size, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd + point_to_shift, 1)
    return data[:eocd] + record + locator + data[eocd:]


def test_zip64_locator_read_two_ways_fails_closed(scan, check):
    base = zip_bytes({"a.json": b"{}"})
    check(scan(_zip64(base), "a.zip"), "safe")
    check(scan(_zip64(base, point_to_shift=-30), "b.zip"), "error", "zip64 locator points away")


def test_zip64_end_record_disagreeing_with_end_record(scan, check):
    base = zip_bytes({"a.json": b"{}", "b.json": b"{}"})
    data = bytearray(_zip64(base))
    rec = data.rfind(b"PK\x06\x06")
    struct.pack_into("<Q", data, rec + 32, 1)  # zip64 record says one entry, end record two
    check(scan(bytes(data), "c.zip"), "error", "disagrees with the end record")


# ------------------------------------------------------------------ 4. no optional parser
def test_hdf5_member_without_h5py_is_not_safe(scan, check, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    blob = b"\x89HDF\r\n\x1a\n" + bytes(200)
    check(scan(blob, "legacy.h5"), "error", "h5py is not installed")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("model.h5")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    check(scan(out.getvalue(), "bundle.tar"), "error", "h5py is not installed")


def test_hdf5_with_h5py_reads_members_exactly(scan, check, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(_lambda_config())
    data = path.read_bytes()
    check(scan(data, "copy.h5"), "unsafe", "Lambda")
    check(scan(zip_bytes({"inner/model.h5": data}), "bundle.zip"), "unsafe", "Lambda")
    with h5py.File(path, "w") as f:
        f.attrs["note"] = "weights only"
    check(scan(zip_bytes({"inner/model.h5": path.read_bytes()}), "ok.zip"), "safe")


def test_joblib_plain_reading_keeps_real_imports(scan, check):
    """pickle.load (or numpy.load, legacy torch.load) of a joblib file reads the inline array
    bytes as opcodes. Names the plain reading cannot import are noise; a real module stands."""
    joblib = pytest.importorskip("joblib")
    out = io.BytesIO()
    joblib.dump({"a": np.zeros(2)}, out)
    data = out.getvalue()
    at = data.find(bytes(16))  # the array bytes; before them a padding length and its padding
    pad = at - 1
    while data[pad] == 0xFF:
        pad -= 1
    assert data[pad] == at - pad - 1
    # the padding length byte is 'c' (99): joblib skips 99 bytes, a plain unpickler runs them
    hidden = b"json\nloads\n.".ljust(ord("c"), b"\xff")
    hostile = data[:pad] + b"c" + hidden + data[at:]
    assert joblib.load(io.BytesIO(hostile))["a"].tolist() == [0.0, 0.0]
    check(scan(hostile, "m.joblib"), "unsafe", "json.loads")
    honest = io.BytesIO()
    joblib.dump({"labels": np.array(["a", "b"], dtype=object), "x": np.arange(3.0)}, honest)
    check(scan(honest.getvalue(), "labels.joblib"), "safe")
