"""Non-pickle formats: Keras, HDF5, ONNX, safetensors, TensorFlow SavedModel."""
import base64
import json
import sys
import marshal
import struct

import pytest
from filescan_asm import pb, system, zip_bytes


def keras_zip(config: dict) -> bytes:
    return zip_bytes({"metadata.json": json.dumps({"keras_version": "3.3.3"}).encode(),
                      "config.json": json.dumps(config).encode(), "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(64)})


def dense(name: str) -> dict:
    return {"module": "keras.layers", "class_name": "Dense", "config": {"name": name, "units": 2,
            "activation": "relu"}, "registered_name": None}


def sequential(*layers: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "seq", "layers": list(layers)},
            "registered_name": None}


def test_keras_plain_model_is_safe(scan, check):
    report = scan(keras_zip(sequential(dense("d1"), dense("d2"))), "m.keras")
    check(report, "safe")
    assert report.format == "keras"


def test_keras_lambda_layer(scan, check):
    code = base64.b64encode(marshal.dumps(compile(f"__import__('os').system('{scan.command}')", "<l>", "eval"))).decode()
    layer = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
             "config": {"name": "evil", "function": {"class_name": "__lambda__", "config": {"code": code}}}}
    check(scan(keras_zip(sequential(dense("d"), layer)), "m.keras"), "unsafe", "Lambda layer 'evil'", kinds=["code-layer"])


def test_keras_reference_to_arbitrary_module(scan, check):
    layer = dense("d")
    layer["config"]["activation"] = {"module": "os", "class_name": "function", "config": "system",
                                     "registered_name": "function"}
    report = scan(keras_zip(sequential(layer)), "m.keras")
    check(report, "unsafe", "os.function", kinds=["foreign-reference"])
    assert report.worst == "Critical"


def test_keras_function_outside_safe_modules(scan, check):
    layer = dense("d")
    layer["config"]["activation"] = {"module": "keras.src.saving.serialization_lib", "class_name": "function",
                                     "config": "enable_unsafe_deserialization", "registered_name": "function"}
    check(scan(keras_zip(sequential(layer)), "m.keras"), "unsafe", "enable_unsafe_deserialization")


def test_keras_config_json_alone(scan, check):
    legacy = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {
        "name": "l", "function": ["4wEAAAAA", None, None], "function_type": "lambda"}}]}}
    check(scan(json.dumps(legacy).encode(), "model.json"), "unsafe", kinds=["code-layer"])


def test_legacy_h5_with_lambda_in_model_config(scan, check, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # the raw-bytes path used when h5py is absent
    config = json.dumps({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "lam", "function_type": "lambda"}}]}}).encode()
    blob = b"\x89HDF\r\n\x1a\n" + bytes(100) + b"model_config" + bytes(40) + config + bytes(50)
    check(scan(blob, "model.h5"), "unsafe", "Lambda layer 'lam'")
    plain = json.dumps({"class_name": "Sequential", "config": {"layers": [dense("d")]}}).encode()
    # without h5py the byte search cannot vouch for the attributes Keras reads: never "safe"
    check(scan(b"\x89HDF\r\n\x1a\n" + bytes(100) + b"model_config" + bytes(8) + plain + bytes(8), "m.h5"), "error",
          "h5py is not installed")
    check(scan(b"\x89HDF\r\n\x1a\n" + bytes(100) + b"model_config" + bytes(8) + b"{broken", "m.h5"), "error")


def test_real_h5_with_h5py(scan, check, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "real.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Lambda", "config": {"name": "lam"}}]}}).encode()
    check(scan(path.read_bytes(), "copy.h5"), "unsafe", "Lambda")


def _onnx_model(location: str) -> bytes:
    tensor = pb(1, 4) + pb(2, 1) + pb(8, "w") + pb(13, pb(1, "location") + pb(2, location)) + pb(14, 1)
    graph = pb(1, pb(1, "w") + pb(2, "y") + pb(4, "Identity")) + pb(2, "g") + pb(5, tensor)
    return pb(1, 8) + pb(2, "test") + pb(7, graph) + pb(8, pb(2, 17))


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "C:\\secrets.bin", "a/../../b"])
def test_onnx_external_data_escaping_the_folder(scan, check, location):
    report = scan(_onnx_model(location), "model.onnx")
    check(report, "unsafe", location.split("\\")[-1], kinds=["external-data-escape"])
    assert report.format == "onnx"


def test_onnx_external_data_inside_the_folder(scan, check):
    check(scan(_onnx_model("weights/w.bin"), "model.onnx"), "safe")


def test_onnx_with_the_onnx_library(scan, check):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    t = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    t.data_location = TensorProto.EXTERNAL
    del t.float_data[:]
    entry = t.external_data.add()
    entry.key, entry.value = "location", "../../../etc/shadow"
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [t])
    data = helper.make_model(graph).SerializeToString()
    check(scan(data, "m.onnx"), "unsafe", "../../../etc/shadow")
    check(scan(data[:-5], "m.onnx"), "error")


def _safetensors(header: dict, data: bytes, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def test_safetensors_rules(scan, check):
    ok = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "I8", "shape": [4], "data_offsets": [8, 12]}}
    check(scan(_safetensors(ok, bytes(12)), "m.safetensors"), "safe")
    overlap = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    check(scan(_safetensors(overlap, bytes(12)), "m.safetensors"), "error", "overlaps")
    beyond = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    check(scan(_safetensors(beyond, bytes(8)), "m.safetensors"), "error", "past the end")
    check(scan(_safetensors(ok, bytes(12) + b"extra"), "m.safetensors"), "error", kinds=["trailing-data"])
    bad_dtype = {"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 1]}}
    check(scan(_safetensors(bad_dtype, bytes(1)), "m.safetensors"), "error", "unknown dtype")
    giant = struct.pack("<Q", 1 << 60) + b"{}"
    check(scan(giant, "m.safetensors"), "error")


def test_safetensors_with_pickled_metadata(scan, check):
    meta = {"__metadata__": {"config": base64.b64encode(system(scan.command)).decode()}}
    check(scan(_safetensors(meta, b""), "m.safetensors"), "unsafe", "os.system", kinds=["pickled-metadata"])


def test_saved_model_with_file_ops(scan, check):
    def node(name: str, op: str) -> bytes:
        return pb(1, name) + pb(2, op)

    graph = pb(1, node("x", "Const")) + pb(1, node("read", "ReadFile"))
    library = pb(1, pb(1, pb(1, "f")) + pb(3, node("w", "WriteFile")))
    saved = pb(1, 1) + pb(2, pb(1, pb(1, "tags")) + pb(2, graph + pb(2, library)))
    report = scan(saved, "saved_model.pb")
    check(report, "unsafe", "ReadFile", "WriteFile", kinds=["dangerous-op"])
    assert report.format == "tf-savedmodel"
    benign = pb(1, 1) + pb(2, pb(1, pb(1, "tags")) + pb(2, pb(1, node("x", "Const")) + pb(1, node("s", "SaveV2"))))
    check(scan(benign, "saved_model.pb"), "safe")


def test_skops_schema_naming_a_dangerous_function(scan, check):
    schema = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "protocol": 2,
              "_skops_version": "0.10", "content": {"f": {
                  "__class__": "function", "__module__": "builtins", "__loader__": "FunctionNode",
                  "content": {"module_path": "os", "function": "system"}}}}
    report = scan(zip_bytes({"schema.json": json.dumps(schema).encode()}), "m.skops")
    check(report, "unsafe", "os.system")
    assert report.format == "skops"
