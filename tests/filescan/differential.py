"""Differential testing of the model-file scanner against the real loaders.

The oracle is simple: a file whose payload runs when a real loader opens it must never be
called ``safe`` by the scanner. Every candidate file carries a *canary* payload that creates
one marker file in its own folder and does nothing else; each candidate is loaded by each
applicable loader in a child process (own temporary folder as working directory, stripped
environment, time limit), and the marker tells whether the payload ran.

Candidates come from three generators, each a function ``(folder) -> list[Candidate]``:

- ``payload_shapes``: the ways a pickle can reach a call (GLOBAL, STACK_GLOBAL with names in
  the memo, INST, OBJ, NEWOBJ, gadget chains through allowed callables), in several
  protocols, and wrapped in other formats (compressed, tar, HDF5 at an offset, npy, joblib);
- ``number_prefixes``: protocol-0 text numbers read differently by naive parsers, placed
  before a payload;
- ``spliced_models``: real model files (scikit-learn pickles, joblib dumps) with a payload
  inserted at opcode boundaries of the original stream.

To grow the harness with a new loader, add its loading line to ``LOADERS`` (and to a
candidate's ``loaders`` when it applies); with a new format, add a generator that wraps
payloads the way that format's loader reads them. See docs/filescan-differential.md.
"""
from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

CANARY = "CANARY"

# How each loader opens a file: the line run in the child process (argv[1] is the path).
LOADERS: dict[str, str] = {
    "pickle": "import pickle; pickle.load(open(path, 'rb'))",
    "numpy": "import numpy; numpy.load(path, allow_pickle=True)",
    "joblib": "import joblib; joblib.load(path)",
    "torch": "import torch; torch.load(path, weights_only=False)",
    "keras": "import keras; keras.saving.load_model(path, safe_mode=False)",
}
_MODULES = {"pickle": "pickle", "numpy": "numpy", "joblib": "joblib", "torch": "torch", "keras": "keras"}

# The child imports the loader once, then forks one grandchild per file, so that a payload or
# a crash in one file cannot affect the next and the import cost is paid once per loader.
_DRIVER = r"""
import os, signal, sys
{prelude}
for path in sys.argv[2:]:
    pid = os.fork()
    if pid == 0:
        signal.alarm(int(sys.argv[1]))
        os.chdir(os.path.dirname(path))
        try:
            {load}
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
"""


@dataclass
class Candidate:
    """One file to try: its name, a builder of its bytes for a given canary path, and the
    loaders that would open a file like it."""

    name: str
    build: object  # Callable[[str], bytes]
    loaders: tuple[str, ...] = ("pickle", "numpy", "joblib")
    suffix: str = ".bin"
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Outcome:
    candidate: Candidate
    verdict: str
    fired: dict[str, bool]
    details: str = ""

    @property
    def missed(self) -> bool:
        """The payload ran under some loader while the scanner called the file safe."""
        return self.verdict == "safe" and any(self.fired.values())


def available_loaders() -> set[str]:
    return {name for name, module in _MODULES.items() if importlib.util.find_spec(module) is not None}


def _sandbox_env(home: str) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH") if k in os.environ}
    return {**keep, "HOME": home, "TMPDIR": home, "PYTHONDONTWRITEBYTECODE": "1", "NO_PROXY": "*",
            "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "KERAS_BACKEND": "numpy"}


def run_loader(loader: str, paths: list[Path], timeout: int = 20, preload: tuple[str, ...] = ()) -> None:
    """Open every file in ``paths`` with ``loader``, each in its own forked child (``preload``:
    modules the files will import, imported once before forking to keep each load quick)."""
    if not paths:
        return
    load_line = LOADERS[loader]
    prelude = "; ".join(f"import {m}" for m in (_MODULES[loader], *preload))
    script = _DRIVER.format(prelude=prelude, load=load_line)
    home = tempfile.mkdtemp(prefix="rl-diff-home-")
    budget = 60 + timeout * len(paths)
    subprocess.run([sys.executable, "-c", script, str(timeout), *map(str, paths)], env=_sandbox_env(home),
                   cwd=home, timeout=budget, capture_output=True, check=False)


def _fired(folder: Path) -> bool:
    return any(p.name.startswith(CANARY) for p in folder.iterdir())


def evaluate(candidates: list[Candidate], root: Path, loaders: set[str] | None = None,
             timeout: int = 20, preload: tuple[str, ...] = ()) -> list[Outcome]:
    """Scan every candidate, load it with every applicable available loader, and report."""
    from redline.filescan import scan_path

    usable = available_loaders() if loaders is None else loaders & available_loaders()
    placed: list[tuple[Candidate, Path, Path]] = []
    for i, cand in enumerate(candidates):
        folder = root / f"c{i:04d}"
        folder.mkdir(parents=True)
        path = folder / f"model{cand.suffix}"
        path.write_bytes(cand.build(str(folder / CANARY)))
        placed.append((cand, folder, path))
    verdicts = {}
    for cand, folder, path in placed:
        report = scan_path(path)
        verdicts[path] = (report.verdict, "; ".join(f"{i.kind}: {i.detail}" for i in report.issues[:3]))
        assert not _fired(folder), f"scanning {cand.name} ran its payload"
    fired: dict[Path, dict[str, bool]] = {path: {} for _c, _f, path in placed}
    for loader in sorted(usable):
        todo = [(c, f, p) for c, f, p in placed if loader in c.loaders]
        for _c, folder, _p in todo:  # one loader at a time: clear the marker between loaders
            for marker in folder.glob(f"{CANARY}*"):
                marker.unlink()
        run_loader(loader, [p for _c, _f, p in todo], timeout, preload)
        for _c, folder, path in todo:
            fired[path][loader] = _fired(folder)
    return [Outcome(c, verdicts[p][0], fired[p], verdicts[p][1]) for c, _f, p in placed]


# ------------------------------------------------------------------ pickle assembly
def _text(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + struct.pack("<I", len(raw)) + raw


def _glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str0(s: str) -> bytes:
    return b"V" + s.encode("raw-unicode-escape") + b"\n"


def open_call(canary: str) -> bytes:
    """``builtins.open(canary, 'w')``: creates the marker (protocol-0 opcodes only)."""
    return _glob("builtins", "open") + b"(" + _str0(canary) + _str0("w") + b"tR"


def _wrap(body: bytes, proto: int) -> bytes:
    return (b"\x80" + bytes([proto]) if proto >= 2 else b"") + body + b"."


def payload_shapes(loaders: tuple[str, ...] = ("pickle", "numpy", "joblib")) -> list[Candidate]:
    """Payload spellings and gadget chains, plain and wrapped in other formats."""
    out: list[Candidate] = []

    def add(name, build, **kw):
        kw.setdefault("loaders", loaders)
        out.append(Candidate(name, build, **kw))

    for proto in (0, 2, 4):
        add(f"reduce-p{proto}", lambda c, p=proto: _wrap(open_call(c), p))
    add("stack-global-memo", lambda c: _wrap(
        _text("builtins") + b"\x94" + _text("open") + b"\x94" + b"h\x00h\x01\x93(" + _text(c) + _text("w") + b"tR", 4))
    add("inst", lambda c: _wrap(b"(" + _str0(c) + _str0("w") + b"ibuiltins\nopen\n", 0))
    add("obj", lambda c: _wrap(b"(" + _glob("builtins", "open") + _str0(c) + _str0("w") + b"o", 0))
    add("gadget-ufunc-setstate", _ufunc_setstate_chain)
    add("gadget-ufunc-setstate-estimator", lambda c: _ufunc_setstate_chain(
        c, holder=_glob("copyreg", "__newobj__") + b"(" + _glob("sklearn.preprocessing._data", "StandardScaler") + b"tR"))
    # format confusion: the same payload carried by other formats' signatures
    add("hdf5-at-512", lambda c: _pad(_wrap(open_call(c), 2), 512) + b"\x89HDF\r\n\x1a\n" + bytes(64))
    if importlib.util.find_spec("h5py") is not None:
        add("hdf5-userblock", _hdf5_userblock, suffix=".h5")
    add("tar-header", _tar_polyglot)
    add("gzip", lambda c: gzip.compress(_wrap(open_call(c), 2)), loaders=("joblib",))
    add("zlib", lambda c: zlib.compress(_wrap(open_call(c), 2)), loaders=("joblib",))
    add("bz2", lambda c: bz2.compress(_wrap(open_call(c), 2)), loaders=("joblib",))
    add("npy-object", _npy_object, suffix=".npy", loaders=("numpy",))
    if importlib.util.find_spec("joblib") is not None:
        add("joblib-dtype-size", _joblib_dtype_size, loaders=("joblib",), suffix=".joblib")
    return out


def _hdf5_userblock(canary: str) -> bytes:
    """A valid HDF5 file (h5py opens it) whose 512-byte user block holds a pickle."""
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.h5"
        with h5py.File(path, "w", userblock_size=512) as f:
            f.attrs["note"] = "weights"
        data = bytearray(path.read_bytes())
    data[:512] = _pad(_wrap(open_call(canary), 2), 512)
    return bytes(data)


def _pad(data: bytes, size: int) -> bytes:
    return data + bytes(size - len(data))


def _ufunc_setstate_chain(canary: str, holder: bytes | None = None) -> bytes:
    """numpy's _ufunc_reconstruct fetches numpy.savez (a file writer); a dict-state BUILD puts
    it into the holder's __dict__ as __setstate__; the next BUILD calls it with the path."""
    holder = holder if holder is not None else _glob("collections", "OrderedDict") + b")R"
    fetch = _glob("numpy.core", "_ufunc_reconstruct") + b"(" + _str0("numpy") + _str0("savez") + b"tR"
    body = holder + b"}" + _text("__setstate__") + fetch + b"sb" + _str0(canary + ".npz") + b"b"
    return _wrap(body, 2)


def _tar_polyglot(canary: str) -> bytes:
    """A tar archive whose first header's name field is a complete pickle."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    data = bytearray(out.getvalue())
    # the loader runs in the file's folder, so the marker's bare name fits the 100-byte field
    name = _wrap(_glob("builtins", "open") + b"(" + _str0(os.path.basename(canary)) + _str0("w") + b"tR", 2)
    assert len(name) <= 100
    data[0:100] = _pad(name, 100)
    data[148:156] = b"        "
    data[148:156] = f"{sum(data[:512]):06o}\x00 ".encode()
    return bytes(data)


def _npy_object(canary: str) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = header + " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + _wrap(open_call(canary), 2)


def _joblib_dtype_size(canary: str) -> bytes:
    """A joblib dump whose float64 dtype carries element size 4 in its pickled state. numpy
    ignores that size for fixed-size types (joblib reads 8 bytes per element); a scanner that
    believes it reads the second half of the array as opcodes, here a BINBYTES that hides the
    payload joblib then runs."""
    import joblib
    import numpy as np

    n = 4
    buf = io.BytesIO()
    joblib.dump({"a": np.zeros(n)}, buf)
    data = buf.getvalue()
    state = b"K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    at = data.find(state)
    assert at > 0, "unexpected joblib dtype encoding"
    patched = state.replace(b"J\xff\xff\xff\xffJ\xff\xff\xff\xff", b"J\x04\x00\x00\x00J\xff\xff\xff\xff")
    data = data[:at] + patched + data[at + len(state):]
    start = data.find(b"\x00" * (8 * n))  # the array data (zeros)
    payload = open_call(canary)
    half = 4 * n
    hide = b"B" + struct.pack("<I", half - 5 + len(payload))
    tail = data[start + 8 * n:]
    # both readers meet after the payload, each with one extra value on the stack: POP it
    return data[:start] + bytes(half) + hide + bytes(half - 5) + payload + b"0" + tail


def _torch_zip(canary: str | None) -> bytes:
    """A torch.save archive, stored; with ``canary`` its data.pkl starts with a payload."""
    import zipfile

    import torch

    raw = io.BytesIO()
    torch.save({"w": torch.ones(2)}, raw)
    src = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if canary is not None and info.filename.endswith("data.pkl"):
                data = data[:2] + open_call(canary) + b"0" + data[2:]
            dst.writestr(info.filename, data)
    return out.getvalue()


def torch_spliced(canary: str) -> bytes:
    return _torch_zip(canary)


def torch_zip64_two_directories(canary: str) -> bytes:
    """Two archives in one file: Python's zipfile reads the zip64 end record just before the
    locator (a benign checkpoint), PyTorch's reader the one the locator points to (the same
    checkpoint with a payload in data.pkl)."""

    def split(z: bytes) -> tuple[bytes, bytes, int]:
        eocd = z.rfind(b"PK\x05\x06")
        _nd, n, size, off = struct.unpack_from("<HHII", z, eocd + 8)
        return z[:off], z[off : off + size], n

    def shifted(cd: bytes, delta: int) -> bytes:
        out, pos = bytearray(cd), 0
        while pos < len(out):
            nlen, xlen, clen = struct.unpack_from("<HHH", out, pos + 28)
            struct.pack_into("<I", out, pos + 42, struct.unpack_from("<I", out, pos + 42)[0] + delta)
            pos += 46 + nlen + xlen + clen
        return bytes(out)

    def record(n: int, size: int, off: int) -> bytes:
        return struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, size, off)

    locals_a, cd_a, n_a = split(_torch_zip(None))
    locals_b, cd_b, n_b = split(_torch_zip(canary))
    cd_b = shifted(cd_b, len(locals_a))
    cd_b_at = len(locals_a) + len(locals_b)
    rec_b_at = cd_b_at + len(cd_b)
    cd_a_at = rec_b_at + 56
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, rec_b_at, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return (locals_a + locals_b + cd_b + record(n_b, len(cd_b), cd_b_at) + cd_a
            + record(n_a, len(cd_a), cd_a_at) + locator + end)


def torch_zip64_hidden_directory(canary: str) -> bytes:
    """As above, but the second archive (local entries, central directory, zip64 end record)
    lies inside the raw bytes of a tensor of the first, which no reader of the first parses."""
    import torch

    evil = _torch_zip(canary)
    eocd = evil.rfind(b"PK\x05\x06")
    _nd, n_b, size_b, off_b = struct.unpack_from("<HHII", evil, eocd + 8)
    locals_b, cd_b = evil[:off_b], evil[off_b : off_b + size_b]
    blob_len = len(locals_b) + size_b + 56

    def checkpoint(blob: bytes) -> bytes:
        raw = io.BytesIO()
        torch.save({"w": torch.frombuffer(bytearray(blob), dtype=torch.uint8)}, raw)
        return raw.getvalue()

    marker = bytes(range(256)) * (blob_len // 256 + 1)
    at = checkpoint(marker[:blob_len]).find(marker[:blob_len])  # where the tensor bytes land
    shifted, pos = bytearray(cd_b), 0
    while pos < len(shifted):
        nlen, xlen, clen = struct.unpack_from("<HHH", shifted, pos + 28)
        struct.pack_into("<I", shifted, pos + 42, struct.unpack_from("<I", shifted, pos + 42)[0] + at)
        pos += 46 + nlen + xlen + clen
    cd_b_at = at + len(locals_b)
    rec_b = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n_b, n_b, size_b, cd_b_at)
    good = checkpoint(locals_b + bytes(shifted) + rec_b)
    assert good.find(locals_b) == at
    eocd = good.rfind(b"PK\x05\x06")
    _nd, n_a, size_a, off_a = struct.unpack_from("<HHII", good, eocd + 8)
    rec_a = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n_a, n_a, size_a, off_a)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, cd_b_at + size_b, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    cut = eocd - 76 if good[eocd - 20 : eocd - 16] == b"PK\x06\x07" else eocd  # torch may write zip64 records
    return good[:cut] + rec_a + locator + end


def number_prefixes(loaders: tuple[str, ...] = ("pickle", "numpy")) -> list[Candidate]:
    """Text numbers the C unpickler accepts in ways a naive parser does not, before a payload."""
    prefixes = {"long-hex": b"L0x10L\n0", "long-underscore": b"L1_000\n0", "int-octal": b"I010\n0",
                "int-nul": b"I12\x00junk\n0", "int-empty": b"I\n0", "int-space": b"I 7\n0",
                "float-nul": b"F1.5\x00junk\n0", "int-hex": b"I0x1f\n0"}
    return [Candidate(f"prefix-{name}", lambda c, p=prefix: p + open_call(c) + b".", loaders=loaders)
            for name, prefix in prefixes.items()]


def _opcode_boundaries(stream: bytes) -> list[int]:
    return [pos for _op, _arg, pos in pickletools.genops(stream)]


def spliced_models(models: dict[str, bytes], every: int = 1,
                   loaders: tuple[str, ...] = ("pickle",)) -> list[Candidate]:
    """Real pickles with ``payload POP`` inserted before every ``every``-th opcode (after the
    protocol header): the stack is left as it was, so the rest of the stream still loads."""
    out = []
    for name, stream in models.items():
        cuts = _opcode_boundaries(stream)
        cuts = [c for c in cuts if c >= (2 if stream[:1] == b"\x80" else 0)]
        for k, cut in enumerate(cuts[::every]):
            out.append(Candidate(f"splice-{name}@{cut}",
                                 lambda c, s=stream, at=cut: s[:at] + open_call(c) + b"0" + s[at:],
                                 loaders=loaders, tags=("splice",)))
    return out


def small_models() -> dict[str, bytes]:
    """Honest pickles to splice into (protocol 2 and 4; no framing, so splices stay valid)."""
    import warnings

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(max_iter=50).fit(X, y)
        tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    return {"logreg-p2": pickle.dumps(lr, protocol=2), "tree-p2": pickle.dumps(tree, protocol=2),
            "logreg-p3": pickle.dumps(lr, protocol=3)}
