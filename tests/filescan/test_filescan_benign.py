"""Files written by the real libraries must all be "safe": zero false positives."""
import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest

from redline.filescan import scan_path


def assert_all_safe(paths):
    bad = []
    for path in paths:
        report = scan_path(path)
        if report.verdict != "safe":
            bad.append(f"{path.name}: {report.verdict} {[(i.kind, i.member, i.detail) for i in report.issues][:3]}")
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="module")
def sklearn_models():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_iris
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y),
            "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
            "boosting": GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, y),
            "tree": DecisionTreeClassifier(random_state=0).fit(X, y),
            "mlp": MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0).fit(X, y),
        }


def test_sklearn_pickles_and_joblib(tmp_path, sklearn_models):
    import joblib

    paths = []
    for name, model in sklearn_models.items():
        for proto in (2, 3, 4, 5):
            path = tmp_path / f"{name}_p{proto}.pkl"
            path.write_bytes(pickle.dumps(model, protocol=proto))
            paths.append(path)
        joblib.dump(model, tmp_path / f"{name}.joblib")
        joblib.dump(model, tmp_path / f"{name}_z.joblib", compress=3)
        paths += [tmp_path / f"{name}.joblib", tmp_path / f"{name}_z.joblib"]
    assert_all_safe(paths)
    assert scan_path(tmp_path / "forest.joblib").format == "joblib"


def test_skops_files(tmp_path, sklearn_models):
    sio = pytest.importorskip("skops.io")
    sio.dump(sklearn_models["pipeline"], tmp_path / "pipe.skops")
    sio.dump(sklearn_models["forest"], tmp_path / "forest.skops")
    assert_all_safe([tmp_path / "pipe.skops", tmp_path / "forest.skops"])


@pytest.fixture(scope="module")
def torch_checkpoint():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(3, 4)).sum().backward()
    opt.step()
    return torch, net, {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 7}


def test_torch_save_formats(tmp_path, torch_checkpoint):
    torch, net, checkpoint = torch_checkpoint
    paths = []
    for proto in (2, 4):
        zip_path, legacy_path = tmp_path / f"ck{proto}.pt", tmp_path / f"ck{proto}_legacy.pt"
        torch.save(checkpoint, zip_path, pickle_protocol=proto)
        torch.save(checkpoint, legacy_path, _use_new_zipfile_serialization=False, pickle_protocol=proto)
        paths += [zip_path, legacy_path]
    torch.save({"i16": torch.arange(5, dtype=torch.int16), "bf16": torch.ones(3, dtype=torch.bfloat16),
                "bool": torch.tensor([True, False]), "view": torch.arange(10.0)[2:5]}, tmp_path / "dtypes.pt")
    torch.save({"i64": torch.arange(6)}, tmp_path / "legacy_long.pt", _use_new_zipfile_serialization=False)
    torch.jit.script(net).save(tmp_path / "scripted.pt")
    paths += [tmp_path / "dtypes.pt", tmp_path / "legacy_long.pt", tmp_path / "scripted.pt"]
    assert_all_safe(paths)
    assert scan_path(tmp_path / "ck2_legacy.pt").format == "pytorch-legacy"
    assert scan_path(tmp_path / "ck2.pt").format == "pytorch"


def test_numpy_files(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(12.0).reshape(3, 4))
    np.save(tmp_path / "s.npy", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", "<U3")]))
    np.savez(tmp_path / "a.npz", x=np.arange(3), y=np.ones((2, 2), dtype=np.float32))
    np.savez_compressed(tmp_path / "c.npz", x=np.arange(300), y=np.eye(4))
    assert_all_safe([tmp_path / n for n in ("a.npy", "s.npy", "a.npz", "c.npz")])


def test_safetensors_file(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    st.save_file({"w": np.ones((3, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.int64)},
                 tmp_path / "m.safetensors", metadata={"format": "np"})
    assert_all_safe([tmp_path / "m.safetensors"])


def test_keras_like_archive(tmp_path):
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
         "config": {"name": "d", "units": 4, "activation": "relu",
                    "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                           "config": {"seed": None}, "registered_name": None}}}]},
        "compile_config": {"loss": {"module": "keras.losses", "class_name": "function",
                                    "config": "mean_squared_error", "registered_name": "function"}}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
    (tmp_path / "m.keras").write_bytes(out.getvalue())
    assert_all_safe([tmp_path / "m.keras"])


def test_onnx_model_with_internal_data(tmp_path, sklearn_models):
    skl2onnx = pytest.importorskip("skl2onnx")
    onx = skl2onnx.to_onnx(sklearn_models["pipeline"], np.zeros((1, 4), dtype=np.float32))
    (tmp_path / "m.onnx").write_bytes(onx.SerializeToString())
    assert_all_safe([tmp_path / "m.onnx"])
    assert scan_path(tmp_path / "m.onnx").format == "onnx"
