"""Payloads inside containers: ZIP (with corrupted or misleading records), PyTorch files,
numpy files, joblib files and nested archives."""
import io
import pickle
import struct
import zipfile
import zlib

import numpy as np
from filescan_asm import (
    BUILD,
    EMPTY_TUPLE,
    MARK,
    NEWOBJ,
    PROTO,
    REDUCE,
    SETITEM,
    STOP,
    TUPLE,
    call,
    drop_from_central,
    duplicate_central,
    glob,
    patch_member,
    sstr,
    system,
    ustr,
    zip_bytes,
)

TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def npy_bytes(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def object_npy(payload: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return out.getvalue() + payload


def torch_zip(data_pkl: bytes, extra: dict | None = None) -> bytes:
    members = {"archive/data.pkl": data_pkl, "archive/byteorder": b"little", "archive/version": b"3\n"}
    members.update(extra or {})
    return zip_bytes(members)


def test_torch_zip_with_payload(scan, check):
    check(scan(torch_zip(system(scan.command)), "model.pt"), "unsafe", "os.system")


def test_zip_payload_in_a_member_with_a_misleading_name(scan, check):
    report = scan(zip_bytes({"README.txt": b"hello\n", "data.txt": system(scan.command)}), "bundle.zip")
    check(report, "unsafe", "os.system")
    assert any(i.member == "data.txt" for i in report.issues)


def test_zip_with_bad_crc_is_still_scanned(scan, check):
    data = patch_member(zip_bytes({"data.pkl": system(scan.command)}), "data.pkl", crc=0x12345678)
    check(scan(data, "model.zip"), "unsafe", "os.system", "CRC mismatch", kinds=["archive-integrity"])


def test_zip_bad_crc_on_benign_member_is_an_error(scan, check):
    data = patch_member(zip_bytes({"x.pkl": pickle.dumps([1, 2])}), "x.pkl", crc=0)
    check(scan(data, "model.zip"), "error", "CRC mismatch")


def test_encrypted_member_is_an_error(scan, check):
    data = patch_member(zip_bytes({"data.pkl": pickle.dumps([1])}), "data.pkl", flags_or=0x01)
    check(scan(data, "model.zip"), "error", kinds=["encrypted"])


def test_local_and_central_names_differ(scan, check):
    data = patch_member(zip_bytes({"data.pkl": system(scan.command)}), "data.pkl", local_name=b"data.txt")
    check(scan(data, "model.zip"), "unsafe", "os.system", "local header names it", kinds=["archive-integrity"])


def test_hidden_member_not_in_central_directory(scan, check):
    data = drop_from_central(zip_bytes({"evil.pkl": system(scan.command), "ok.txt": b"fine\n"}), "evil.pkl")
    with zipfile.ZipFile(io.BytesIO(data)) as z:  # Python's zipfile does not see it
        assert z.namelist() == ["ok.txt"]
    check(scan(data, "model.zip"), "unsafe", "os.system", "hidden member")


def test_overlapping_members(scan, check):
    data = duplicate_central(zip_bytes({"a.pkl": pickle.dumps(1)}), "a.pkl", b"b.pkl")
    check(scan(data, "model.zip"), "error", "overlaps", kinds=["archive-integrity"])


def test_unknown_compression_method(scan, check):
    data = bytearray(zip_bytes({"a.pkl": pickle.dumps(1)}))
    for pos in (data.find(b"PK\x03\x04") + 8, data.find(b"PK\x01\x02") + 10):
        struct.pack_into("<H", data, pos, 99)
    check(scan(bytes(data), "model.zip"), "error", "unknown compression method")


def test_deflated_members_are_inflated(scan, check):
    data = zip_bytes({"x/y/z.bin": system(scan.command)}, zipfile.ZIP_DEFLATED)
    check(scan(data, "a.zip"), "unsafe", "os.system")


def test_truncated_zip_is_an_error(scan, check):
    data = zip_bytes({"a.pkl": pickle.dumps(list(range(100)))})
    check(scan(data[: len(data) - 30], "a.zip"), "error")


def test_prepended_data_before_zip(scan, check):
    data = pickle.dumps({"ok": 1}, protocol=2) + zip_bytes({"evil.pkl": system(scan.command)})
    check(scan(data, "model.pt"), "unsafe", "os.system")


def test_nested_zip_in_zip_in_npz(scan, check):
    inner = zip_bytes({"evil.pkl": system(scan.command)})
    middle = zip_bytes({"inner.zip": inner}, zipfile.ZIP_DEFLATED)
    npz = zip_bytes({"a.npy": npy_bytes(np.arange(3)), "middle.zip": middle})
    report = scan(npz, "arrays.npz")
    check(report, "unsafe", "os.system")
    assert any(i.member == "middle.zip!inner.zip!evil.pkl" for i in report.issues)


def test_nesting_depth_limit(scan, check):
    data = pickle.dumps(1)
    for level in range(12):
        data = zip_bytes({f"level{level}.zip": data})
    check(scan(data, "deep.zip"), "error", kinds=["depth-limit"])


def test_object_array_npy(scan, check):
    report = scan(object_npy(system(scan.command)), "x.npy")
    check(report, "unsafe", "os.system", kinds=["object-array"])


def test_object_array_in_npz(scan, check):
    npz = zip_bytes({"w.npy": npy_bytes(np.ones(3)), "o.npy": object_npy(system(scan.command))})
    check(scan(npz, "arrays.npz"), "unsafe", "os.system")


def test_npy_truncated_and_trailing(scan, check):
    good = npy_bytes(np.arange(10.0))
    check(scan(good, "a.npy"), "safe")
    check(scan(good[:-8], "a.npy"), "error", "truncated")
    check(scan(good + b"\x00" * 8, "a.npy"), "error", kinds=["trailing-data"])


def _legacy(model: bytes, keys: bytes, storages: bytes = b"") -> bytes:
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    return (pickle.dumps(TORCH_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2) + sys_info
            + model + keys + storages)


def _legacy_tensor_pickle(extra: bytes = b"") -> bytes:
    pid = MARK + ustr("storage") + glob("torch", "FloatStorage") + ustr("k0") + ustr("cpu") + b"K\x02" + b"N" + TUPLE
    tensor = call(glob("torch._utils", "_rebuild_tensor_v2"), pid + b"Q", b"K\x00", b"K\x02\x85", b"K\x01\x85",
                  b"\x89", glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE)
    return PROTO(2) + MARK + tensor + extra + b"l" + STOP


def test_legacy_torch_layout_is_parsed_exactly(scan, check):
    storages = struct.pack("<q", 2) + struct.pack("<2f", 1.0, 2.0)
    data = _legacy(_legacy_tensor_pickle(), pickle.dumps(["k0"], protocol=2), storages)
    report = scan(data, "old.pt")
    check(report, "safe")
    assert report.format == "pytorch-legacy"
    check(scan(data + b"x", "old.pt"), "error", kinds=["trailing-data"])
    check(scan(data[:-3], "old.pt"), "error", "truncated")


def test_legacy_torch_payload_in_model_pickle(scan, check):
    storages = struct.pack("<q", 2) + struct.pack("<2f", 1.0, 2.0)
    model = _legacy_tensor_pickle(call(glob("os", "system"), ustr(scan.command)))
    check(scan(_legacy(model, pickle.dumps(["k0"], protocol=2), storages), "old.pt"), "unsafe", "os.system")


def test_legacy_torch_payload_in_storage_key_pickle(scan, check):
    storages = struct.pack("<q", 2) + struct.pack("<2f", 1.0, 2.0)
    keys = PROTO(2) + MARK + ustr("k0") + call(glob("subprocess", "call"), ustr(scan.command)) + b"l" + STOP
    check(scan(_legacy(_legacy_tensor_pickle(), keys, storages), "old.pt"), "unsafe", "subprocess.call")


def _joblib_wrapper(dtype: str, shape_ops: bytes, flags: int) -> bytes:
    dtype_obj = (call(glob("numpy", "dtype"), ustr(dtype), b"\x89", b"\x88")
                 + MARK + b"K\x03" + ustr("|") + b"N" + b"N" + b"N" + b"J" + struct.pack("<i", -1)
                 + b"J" + struct.pack("<i", -1) + b"K" + bytes([flags]) + TUPLE + BUILD)
    state = (b"}" + MARK + ustr("subclass") + glob("numpy", "ndarray") + ustr("shape") + shape_ops
             + ustr("order") + ustr("C") + ustr("dtype") + dtype_obj + ustr("allow_mmap") + b"\x89"
             + ustr("numpy_array_alignment_bytes") + b"K\x10" + b"u")
    return glob("joblib.numpy_pickle", "NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD


def test_joblib_inline_array_data_is_skipped(scan, check):
    wrapper = _joblib_wrapper("f8", b"K\x02\x85", 0)
    # after the wrapper: one padding-length byte, the padding, then 2 float64 values
    data = PROTO(2) + MARK + wrapper + b"\x03" + b"\xff" * 3 + struct.pack("<2d", 1.5, 2.5) + ustr("tail") + b"l" + STOP
    report = scan(data, "model.joblib")
    check(report, "safe")
    assert report.format == "joblib"


def test_joblib_payload_after_array(scan, check):
    wrapper = _joblib_wrapper("f8", b"K\x01\x85", 0)
    data = (PROTO(2) + MARK + wrapper + b"\x00" + struct.pack("<d", 1.0)
            + call(glob("os", "system"), ustr(scan.command)) + b"l" + STOP)
    check(scan(data, "model.joblib"), "unsafe", "os.system")


def test_joblib_payload_in_object_array(scan, check):
    wrapper = _joblib_wrapper("O8", b"K\x01\x85", 63)
    data = PROTO(2) + MARK + wrapper + system(scan.command) + b"l" + STOP
    report = scan(data, "model.joblib")
    check(report, "unsafe", "os.system")
    assert report.format == "joblib"


def test_joblib_payload_inside_array_bytes_for_plain_pickle_loaders(scan, check):
    # joblib.load reads these bytes as array data, pickle.load reads them as opcodes
    payload = call(glob("os", "system"), ustr(scan.command)) + b"0"
    wrapper = _joblib_wrapper("u1", b"K" + bytes([len(payload) + 1]) + b"\x85", 0)
    wrapper = wrapper.replace(ustr("numpy_array_alignment_bytes") + b"K\x10", ustr("numpy_array_alignment_bytes") + b"N")
    data = PROTO(2) + MARK + wrapper + payload + b"0" + b"l" + STOP
    check(scan(data, "model.joblib"), "unsafe", "os.system")


def test_compressed_joblib_with_payload(scan, check):
    check(scan(zlib.compress(system(scan.command)), "model.joblib"), "unsafe", "os.system")


def test_torch_zip_storage_size_mismatch(scan, check):
    pid = MARK + ustr("storage") + glob("torch", "FloatStorage") + ustr("0") + ustr("cpu") + b"K\x04" + TUPLE
    data_pkl = PROTO(2) + call(glob("torch._utils", "_rebuild_tensor_v2"), pid + b"Q", b"K\x00", b"K\x04\x85",
                               b"K\x01\x85", b"\x89", glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE) + STOP
    good = torch_zip(data_pkl, {"archive/data/0": b"\x00" * 16})
    check(scan(good, "m.pt"), "safe")
    bad = torch_zip(data_pkl, {"archive/data/0": b"\x00" * 12})
    check(scan(bad, "m.pt"), "error", "storage holds 12 bytes")
    missing = torch_zip(data_pkl)
    check(scan(missing, "m.pt"), "error", "missing")


def test_tar_members_are_scanned(scan, check):
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        payload = system(scan.command)
        info = tarfile.TarInfo("pickle")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    check(scan(out.getvalue(), "model.tar"), "unsafe", "os.system")


def test_setitems_state_dict_on_ordered_dict_is_safe(scan, check):
    data = PROTO(2) + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + MARK + sstr("a") + b"K\x01" + b"u" + STOP
    check(scan(data), "safe")
    data = PROTO(2) + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + sstr("a") + b"K\x01" + SETITEM + STOP
    check(scan(data), "safe")
