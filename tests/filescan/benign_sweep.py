"""A sweep of honest model files written by the real libraries: every default-constructible
scikit-learn estimator (fitted on a little data, saved with pickle, joblib and skops), torch
tensors of every dtype and layout, quantized and exported modules, numpy's special arrays, and
an ONNX model with external data. The scanner must call every one of them ``safe``.

``fast=True`` shrinks iteration counts and ensemble sizes so that the sweep fits in the test
suite; the benchmark runs it with the libraries' defaults.
"""
from __future__ import annotations


import pickle
import warnings
from pathlib import Path

# parameters that only make fitting slower: shrunk in the fast form
_FAST = {"max_iter": 5, "n_estimators": 3, "n_iter": 5, "cv": 2, "n_init": 1, "max_epochs": 5,
         "n_resampling": 5, "n_alphas": 5, "max_trials": 5, "n_components": 2, "n_neighbors": 3,
         "n_iter_no_change": 2}


def _fit(est, X, y) -> bool:
    """Fit on the first data shape the estimator accepts (features and labels, features only,
    positive targets, one feature, text, dicts, or a kernel matrix)."""
    texts = ["red apple", "green pear", "red pear", "blue plum"] * (len(y) // 4)
    shapes = ((X, y), (X,), (X, y + 1.0), (X[:, 0], y), (texts, y[: len(texts)]), (texts,),
              ([{"a": float(v)} for v in X[:, 0]], y), (X @ X.T,), (X, X[:, :2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for args in shapes:
            try:
                est.fit(*args)
                return True
            except Exception:  # noqa: BLE001 - an estimator that cannot fit this data is skipped
                continue
    return False


def sklearn_estimators(fast: bool) -> list[tuple[str, object]]:
    from sklearn.datasets import load_iris
    from sklearn.utils import all_estimators

    X, y = load_iris(return_X_y=True)
    if fast:
        X, y = X[::3], y[::3]
    fitted = []
    for name, cls in all_estimators():
        try:
            est = cls()
        except TypeError:  # needs arguments (meta-estimators): not default-constructible
            continue
        if fast:
            params = est.get_params(deep=False)
            try:
                est.set_params(**{k: v for k, v in _FAST.items() if k in params})
            except ValueError:
                pass
        if _fit(est, X, y):
            fitted.append((name, est))
    return fitted


def extra_sklearn(fast: bool) -> list[tuple[str, object]]:
    """Estimators that keep functions or object arrays, named in issue 21."""
    import numpy as np
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    X = np.abs(np.random.default_rng(0).normal(size=(20, 3)))
    y = np.array(["a", "b"] * 10)
    out = [("FunctionTransformer(log1p)", FunctionTransformer(np.log1p).fit(X)),
           ("SelectKBest(f_classif)", SelectKBest(f_classif, k=2).fit(X, y)),
           ("OneHotEncoder(str)", OneHotEncoder().fit(np.array([["x"], ["y"]], dtype=object)))]
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.append(("LogisticRegression(str labels)", LogisticRegression(max_iter=20).fit(X, y)))
    return out


def write_sklearn(folder: Path, fast: bool) -> list[Path]:
    import joblib

    try:
        import skops.io as sio
    except ImportError:
        sio = None
    paths = []
    for name, est in sklearn_estimators(fast) + extra_sklearn(fast):
        stem = "".join(c if c.isalnum() else "_" for c in name)
        p = folder / f"{stem}.pkl"
        p.write_bytes(pickle.dumps(est))
        j = folder / f"{stem}.joblib"
        joblib.dump(est, j)
        paths += [p, j]
        if sio is not None:
            s = folder / f"{stem}.skops"
            try:
                sio.dump(est, s)
                if sio.get_untrusted_types(file=s):
                    s.unlink()  # skops itself would not load it without being told to trust it
                else:
                    paths.append(s)
            except Exception:  # noqa: BLE001 - skops cannot save every estimator
                s.unlink(missing_ok=True)
    return paths


def write_torch(folder: Path) -> list[Path]:
    import torch

    paths = []

    def save(name, obj, **kw):
        p = folder / name
        torch.save(obj, p, **kw)
        paths.append(p)

    dtypes = [getattr(torch, n) for n in (
        "float32 float64 float16 bfloat16 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool complex32 "
        "complex64 complex128 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz").split() if hasattr(torch, n)]
    save("dtypes.pt", {str(d): torch.zeros(3, dtype=d) for d in dtypes})
    save("dtypes_legacy.pt", {str(d): torch.zeros(3, dtype=d) for d in dtypes if "8_" not in str(d)
                              and str(d) not in ("torch.uint16", "torch.uint32", "torch.uint64", "torch.complex32")},
         _use_new_zipfile_serialization=False)
    dense = torch.eye(4)
    save("layouts.pt", {"coo": dense.to_sparse(), "csr": dense.to_sparse_csr(), "csc": dense.to_sparse_csc(),
                        "bsr": dense.to_sparse_bsr((2, 2)), "bsc": dense.to_sparse_bsc((2, 2)),
                        "channels_last": torch.zeros(1, 2, 2, 2).to(memory_format=torch.channels_last),
                        "view": torch.arange(10.0)[2:7], "nested": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])})
    save("quantized.pt", {"qt": torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.quint8),
                          "qc": torch.quantize_per_channel(torch.randn(2, 3), torch.tensor([0.1, 0.2]),
                                                           torch.tensor([0, 1]), 0, torch.qint8)})
    dq = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4)), {torch.nn.Linear},
                                                dtype=torch.qint8)
    save("dynamic_quantized_state.pt", dq.state_dict())
    save("quantized_linear_state.pt", torch.ao.nn.quantized.Linear(4, 2).state_dict())
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8, 2))
    save("module.pt", net)
    save("state.pt", net.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(net).save(folder / "scripted.pt")
        paths.append(folder / "scripted.pt")
        try:
            exported = torch.export.export(net.eval(), (torch.randn(1, 1, 4, 4),))
            torch.export.save(exported, folder / "exported.pt2")
            paths.append(folder / "exported.pt2")
        except Exception:  # noqa: BLE001 - torch.export is still changing
            pass
    return paths


def write_numpy(folder: Path) -> list[Path]:
    import numpy as np

    paths = []
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0])
    records = np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    for name, value in (("masked", masked), ("records", records), ("matrix", np.asmatrix(np.eye(2))),
                        ("objects", np.array([1, "a", None], dtype=object)), ("datetimes", np.array(["2020-01-01"], "M8[D]"))):
        p = folder / f"{name}.pkl"
        p.write_bytes(pickle.dumps(value))
        paths.append(p)
    np.save(folder / "records.npy", records)
    np.save(folder / "structured.npy", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", "<U3")]))
    np.save(folder / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    paths += [folder / "records.npy", folder / "structured.npy", folder / "objects.npy"]
    if hasattr(np, "dtypes") and hasattr(np.dtypes, "StringDType"):
        np.save(folder / "strings.npy", np.array(["a", "bcd"], dtype=np.dtypes.StringDType()), allow_pickle=True)
        paths.append(folder / "strings.npy")
    import joblib

    joblib.dump({"masked": masked, "objects": np.array(["a", "b"], dtype=object), "x": np.arange(5.0)},
                folder / "arrays.joblib")
    paths.append(folder / "arrays.joblib")
    return paths


def write_onnx_external(folder: Path) -> list[Path]:
    """An ONNX model whose weights live in weights.bin next to it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
    model = helper.make_model(graph)
    sub = folder / "onnx_external"
    sub.mkdir()
    onnx.save_model(model, sub / "model.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return [sub / "model.onnx", sub / "weights.bin"]


def build(folder: Path, fast: bool = True) -> dict[str, list[Path]]:
    """Every family that can be written here, by family name (missing libraries are skipped)."""
    import importlib.util

    families = {}
    writers = {"sklearn": (write_sklearn, "sklearn"), "torch": (write_torch, "torch"),
               "numpy": (write_numpy, "numpy"), "onnx": (write_onnx_external, "onnx")}
    for family, (writer, module) in writers.items():
        if importlib.util.find_spec(module) is None:
            continue
        sub = folder / family
        sub.mkdir(parents=True)
        families[family] = writer(sub, fast) if family == "sklearn" else writer(sub)
    return families


def flagged(paths: list[Path]) -> list[str]:
    """Files the scanner does not call safe (scanned together, as ``scan-files`` would)."""
    from redline.filescan import scan_paths

    bad = []
    for report in scan_paths(paths):
        if report.verdict != "safe":
            issues = "; ".join(f"{i.kind}: {i.detail}" for i in report.issues[:2])
            bad.append(f"{Path(report.path).name}: {report.verdict} ({issues})")
    return bad


if __name__ == "__main__":  # pragma: no cover - manual use
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for fam, files in build(Path(tmp), fast=True).items():
            print(fam, len(files), flagged(files))

