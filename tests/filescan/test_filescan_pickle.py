"""Malicious pickle streams, each assembled by hand and never loaded: the simulator must
report the callable it would run."""
import pickle
import struct

import pytest
from filescan_asm import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    MEMOIZE,
    NEWOBJ,
    PROTO,
    REDUCE,
    SETITEM,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    TUPLE1,
    TUPLE2,
    binget,
    binput,
    call,
    frame,
    glob,
    long_binget,
    long_binput,
    sstr,
    stack_global,
    string0,
    system,
    ustr,
    ustr8,
)


def test_os_system_via_global(scan, check):
    check(scan(system(scan.command)), "unsafe", "os.system", kinds=["unsafe-global", "unsafe-call"])


@pytest.mark.parametrize("proto", [0, 1, 2, 3, 4, 5])
def test_every_protocol_is_read(scan, check, proto):
    head = PROTO(proto) if proto >= 2 else b""
    data = head + glob("posix", "system") + MARK + string0(scan.command) + TUPLE + REDUCE + STOP
    check(scan(data), "unsafe", "posix.system")


def test_subprocess_popen_via_stack_global(scan, check):
    data = PROTO(4) + call(stack_global("subprocess", "Popen"), ustr(scan.command)) + STOP
    check(scan(data), "unsafe", "subprocess.Popen", kinds=["unsafe-call"])


def test_stack_global_operands_from_memo(scan, check):
    data = (PROTO(4) + sstr("os") + MEMOIZE + b"0" + sstr("system") + MEMOIZE + b"0"
            + binget(0) + binget(1) + STACK_GLOBAL + MARK + ustr(scan.command) + TUPLE + REDUCE + STOP)
    check(scan(data), "unsafe", "os.system")


def test_stack_global_operands_in_binunicode8(scan, check):
    data = PROTO(4) + ustr8("nt") + ustr8("system") + STACK_GLOBAL + MARK + ustr(scan.command) + TUPLE + REDUCE + STOP
    check(scan(data), "unsafe", "nt.system")


def test_stack_global_operand_computed_by_a_call(scan, check):
    # builtins.str is harmless to call, but its result names the module at load time
    module = call(glob("builtins", "str"), sstr("os"))
    data = PROTO(4) + module + sstr("system") + STACK_GLOBAL + MARK + ustr(scan.command) + TUPLE + REDUCE + STOP
    check(scan(data), "unsafe", "computed at load time", kinds=["dynamic-global"])


def test_memo_redefinition(scan, check):
    # memo slot 0 first holds a harmless name, then is overwritten with 'os' before use
    data = (PROTO(4) + sstr("collections") + binput(0) + b"0" + sstr("os") + binput(0) + b"0"
            + binget(0) + sstr("system") + STACK_GLOBAL + MARK + ustr(scan.command) + TUPLE + REDUCE + STOP)
    check(scan(data), "unsafe", "os.system")


def test_long_binget_and_long_binput(scan, check):
    data = (PROTO(4) + sstr("subprocess") + long_binput(70000) + b"0" + long_binget(70000) + sstr("check_call")
            + STACK_GLOBAL + MARK + MARK + ustr("touch") + ustr(str(scan.canary)) + b"l" + TUPLE + REDUCE + STOP)
    check(scan(data), "unsafe", "subprocess.check_call")


def test_eval_and_exec(scan, check):
    for name in ("eval", "exec"):
        data = PROTO(2) + call(glob("builtins", name), ustr(f"__import__('os').system('{scan.command}')")) + STOP
        check(scan(data), "unsafe", f"builtins.{name}")


def test_python2_builtin_name_is_mapped(scan, check):
    data = glob("__builtin__", "eval") + MARK + string0("1") + TUPLE + REDUCE + STOP
    check(scan(data), "unsafe", "builtins.eval")


def test_getattr_import_chain(scan, check):
    # getattr(__import__('os'), 'system')(command)
    os_module = call(glob("builtins", "__import__"), ustr("os"))
    system_fn = call(glob("builtins", "getattr"), os_module, ustr("system"))
    data = PROTO(2) + call(system_fn, ustr(scan.command)) + STOP
    check(scan(data), "unsafe", "builtins.getattr", "builtins.__import__", kinds=["dynamic-call"])


@pytest.mark.parametrize("module,name,args", [
    ("pip", "main", (["install", "evil"],)),
    ("pkgutil", "resolve_name", ("os:system",)),
    ("uuid", "_get_command_stdout", ("touch", "CANARY")),
    ("profile", "run", ("import os",)),
    ("cProfile", "run", ("import os",)),
    ("timeit", "timeit", ("import os",)),
    ("runpy", "_run_code", ("import os", {})),
    ("importlib", "import_module", ("os",)),
    ("code", "InteractiveInterpreter", ()),
    ("marshal", "loads", (b"c",)),
    ("torch.serialization", "load", ("other.pt",)),
    ("numpy.testing._private.utils", "runstring", ("import os", {})),
    ("ctypes", "CDLL", ("libc.so.6",)),
    ("_posixsubprocess", "fork_exec", ()),
    ("webbrowser", "open", ("http://example.invalid",)),
    ("shutil", "rmtree", ("/tmp/x",)),
    ("socket", "create_connection", (("127.0.0.1", 9),)),
    ("asyncio.unix_events", "_UnixSubprocessTransport", ()),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode", ()),
])
def test_known_gadgets_are_critical(scan, check, module, name, args):
    data = PROTO(2) + glob(module, name) + pickle.dumps(args, protocol=2)[2:-1] + REDUCE + STOP
    report = scan(data)
    check(report, "unsafe", f"{module}.{name}")
    assert report.worst == "Critical"


def test_functools_partial_wraps_system(scan, check):
    partial = call(glob("functools", "partial"), glob("os", "system"), ustr(scan.command))
    data = PROTO(2) + partial + EMPTY_TUPLE + REDUCE + STOP
    check(scan(data), "unsafe", "functools.partial", kinds=["dynamic-call"])


def test_operator_attrgetter_and_methodcaller(scan, check):
    module = call(glob("importlib", "import_module"), ustr("os"))
    getter = call(glob("operator", "attrgetter"), ustr("system"))
    data = PROTO(2) + call(call(getter, module), ustr(scan.command)) + STOP
    check(scan(data), "unsafe", "operator.attrgetter", kinds=["dynamic-call"])
    caller = call(glob("_operator", "methodcaller"), ustr("system"), ustr(scan.command))
    data = PROTO(2) + call(caller, module) + STOP
    check(scan(data), "unsafe", "_operator.methodcaller")


@pytest.mark.parametrize("module,qualname", [
    ("gettext", "os.system"),  # an unlisted module that imports os
    ("torch.serialization", "os.system"),
    ("collections", "OrderedDict.__class__.__subclasses__"),
    ("numpy", "testing._private.utils.runstring"),
])
def test_dotted_names_through_other_modules(scan, check, module, qualname):
    data = PROTO(4) + call(stack_global(module, qualname), ustr(scan.command)) + STOP
    report = scan(data)
    check(report, "unsafe", f"{module}.{qualname}")
    assert report.worst == "Critical"


def test_allowed_first_component_does_not_allow_the_path(scan, check):
    data = PROTO(4) + call(stack_global("collections", "OrderedDict.fromkeys"), ustr("a")) + STOP
    check(scan(data), "unsafe", "collections.OrderedDict.fromkeys")


def test_build_sets_attributes_on_an_allowed_class(scan, check):
    state = EMPTY_DICT + ustr("__reduce__") + glob("os", "system") + SETITEM
    data = PROTO(2) + glob("collections", "OrderedDict") + state + BUILD + STOP
    check(scan(data), "unsafe", "BUILD sets attributes on the imported object collections.OrderedDict",
          kinds=["attribute-write"])


def test_build_slot_state_with_special_attribute(scan, check):
    instance = glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    slots = EMPTY_DICT + ustr("__class__") + glob("collections", "OrderedDict") + SETITEM
    data = PROTO(2) + instance + b"N" + slots + TUPLE2 + BUILD + STOP
    check(scan(data), "unsafe", "special attribute", kinds=["attribute-write"])


def test_setitem_on_imported_object_calls_its_method(scan, check):
    data = PROTO(2) + glob("collections", "OrderedDict") + ustr("k") + ustr("v") + SETITEM + STOP
    check(scan(data), "unsafe", "__setitem__", kinds=["attribute-call"])


def test_copyreg_reconstructor_with_a_disallowed_class(scan, check):
    data = PROTO(2) + call(glob("copy_reg", "_reconstructor"), glob("subprocess", "Popen"),
                           glob("__builtin__", "object"), b"N") + STOP
    check(scan(data), "unsafe", "subprocess.Popen")


def test_codecs_encode_outside_its_allowed_use(scan, check):
    data = PROTO(2) + call(glob("_codecs", "encode"), ustr("x"), ustr("rot13")) + STOP
    check(scan(data), "unsafe", "_codecs.encode", kinds=["misused-global"])


def test_payload_followed_by_a_broken_stream(scan, check):
    data = PROTO(2) + call(glob("os", "system"), ustr(scan.command)) + b"\xff\xfe garbage"
    report = scan(data)
    check(report, "unsafe", "os.system", kinds=["parse-error"])


def test_payload_after_a_benign_pickle(scan, check):
    data = pickle.dumps({"weights": [1, 2, 3]}, protocol=2) + system(scan.command)
    check(scan(data), "unsafe", "os.system", kinds=["trailing-data"])


def test_junk_after_stop_is_an_error(scan, check):
    check(scan(pickle.dumps([1, 2, 3], protocol=4) + b"\x00junk"), "error", kinds=["trailing-data"])


def test_truncated_pickle_is_an_error(scan, check):
    data = pickle.dumps({"a": list(range(50))}, protocol=4)
    check(scan(data[:-7]), "error", kinds=["parse-error"])


def test_frame_straddling_an_opcode(scan, check):
    body = call(glob("os", "system"), ustr(scan.command)) + STOP
    # the frame ends in the middle of the GLOBAL line; CPython's C loader still runs it
    data = PROTO(4) + b"\x95" + struct.pack("<Q", 5) + body
    report = scan(data)
    check(report, "unsafe", "os.system", kinds=["frame-mismatch"])


def test_frames_around_a_payload(scan, check):
    data = PROTO(4) + frame(call(stack_global("os", "system"), ustr(scan.command)) + STOP)
    check(scan(data), "unsafe", "os.system")


def test_protocol0_inst_with_newlines(scan, check):
    data = MARK + string0(scan.command) + b"ios\nsystem\n" + STOP
    check(scan(data), "unsafe", "os.system")


def test_obj_opcode(scan, check):
    data = MARK + glob("os", "system") + string0(scan.command) + b"o" + STOP
    check(scan(data), "unsafe", "os.system")


@pytest.mark.parametrize("opcode", [b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00"])
def test_extension_codes(scan, check, opcode):
    data = PROTO(2) + opcode + MARK + ustr(scan.command) + TUPLE + REDUCE + STOP
    check(scan(data), "unsafe", kinds=["extension-code"])


def test_raw_pickle_with_torch_persistent_ids(scan, check):
    pid = MARK + ustr("storage") + glob("torch", "FloatStorage") + ustr("0") + ustr("cpu") + b"K\x04" + TUPLE
    tensor = call(glob("torch._utils", "_rebuild_tensor_v2"), pid + b"Q", b"K\x00", b"K\x04\x85",
                  b"K\x01\x85", b"\x89", glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE)
    benign = scan(PROTO(2) + tensor + STOP, "data.pkl")
    check(benign, "safe")
    assert any("persistent ids" in n for n in benign.notes)
    evil = PROTO(2) + MARK + tensor + call(glob("os", "system"), ustr(scan.command)) + b"l" + STOP
    check(scan(evil, "data.pkl"), "unsafe", "os.system")


def test_calling_a_persistent_object(scan, check):
    data = PROTO(2) + ustr("x") + b"Q" + MARK + ustr("y") + TUPLE + REDUCE + STOP
    check(scan(data), "unsafe", kinds=["dynamic-call"])


def test_unknown_global_is_high(scan, check):
    data = PROTO(2) + call(glob("mypackage.models", "Net")) + STOP
    report = scan(data)
    check(report, "unsafe", "unknown callable", kinds=["unknown-global"])
    assert report.worst == "High"


def test_sklearn_function_is_not_a_class(scan, check):
    data = PROTO(2) + call(glob("sklearn.utils._testing", "assert_run_python_script"), ustr("import os")) + STOP
    check(scan(data), "unsafe", "sklearn.utils._testing")


def test_newobj_on_allowed_class_is_safe(scan, check):
    data = PROTO(2) + glob("sklearn.linear_model._logistic", "LogisticRegression") + EMPTY_TUPLE + NEWOBJ
    data += EMPTY_DICT + ustr("C") + b"G" + struct.pack(">d", 1.0) + SETITEM + BUILD + STOP
    check(scan(data), "safe")


def test_text_that_is_not_a_pickle(scan, check):
    report = scan(b"Some notes about this model.\nIt was trained on MNIST.\n", "README.md")
    check(report, "safe")
    assert report.format == "text"


def test_unknown_binary_is_an_error(scan, check):
    check(scan(bytes(range(256)) * 4, "weights.bin"), "error", kinds=["unknown-format"])


def test_tuple1_and_memoize_chains(scan, check):
    data = (PROTO(4) + sstr("os") + MEMOIZE + sstr("system") + MEMOIZE + STACK_GLOBAL + MEMOIZE
            + ustr(scan.command) + TUPLE1 + REDUCE + STOP)
    check(scan(data), "unsafe", "os.system")
