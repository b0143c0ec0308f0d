"""How much a data file may make redline hold in memory, checked before it is read.

A compressed ``.npz`` can declare an array thousands of times its own size (780 KB of
zeros stand for 800 MB), and a CSV's size says little about the memory its cells take
once parsed. So ``.npz`` members are judged by the shape and dtype in their ``.npy``
headers before any array is decompressed, and a CSV by its byte size and cell count as
it is read. Each limit passed is a one-line :class:`~redline.errors.DataError` that names
the limit and the environment variable that raises it:

- ``REDLINE_MAX_DATA_BYTES`` (default 512 MiB): total bytes of the arrays in an ``.npz``
  and of the file size of a CSV;
- ``REDLINE_MAX_CSV_CELLS`` (default 10,000,000): cells of a CSV table (each costs far
  more than its 8 bytes while the text is parsed);
- ``REDLINE_MAX_NPZ_MEMBERS`` (default 64): arrays in one ``.npz``.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["DataLimits", "check_npz"]


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"{name}={text!r} is not a whole number") from None
    if value <= 0:
        raise DataError(f"{name} must be positive, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class DataLimits:
    max_bytes: int = 512 * 1024 * 1024
    max_csv_cells: int = 10_000_000
    max_npz_members: int = 64

    @classmethod
    def from_environment(cls) -> DataLimits:
        return cls(
            max_bytes=_env_int("REDLINE_MAX_DATA_BYTES", cls.max_bytes),
            max_csv_cells=_env_int("REDLINE_MAX_CSV_CELLS", cls.max_csv_cells),
            max_npz_members=_env_int("REDLINE_MAX_NPZ_MEMBERS", cls.max_npz_members),
        )


def check_npz(path: Path, limits: DataLimits) -> None:
    """Refuse an ``.npz`` whose arrays, as declared in their headers, pass ``limits``.

    Reads only each member's ``.npy`` header (a few hundred bytes), so a bomb costs nothing.
    Object arrays are refused here too: loading them would unpickle.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > limits.max_npz_members:
                raise DataError(
                    f"{path}: holds {len(members)} arrays, more than {limits.max_npz_members} "
                    "(raise REDLINE_MAX_NPZ_MEMBERS to read it)"
                )
            total = 0
            for member in members:
                with archive.open(member) as handle:
                    shape, dtype = _npy_header(handle, path, member.filename)
                if dtype.hasobject:
                    raise DataError(f"{path}: holds object arrays; only numeric and string arrays are read")
                size = int(np.prod(shape, dtype=object)) * dtype.itemsize  # object: no int64 overflow
                total += size
                if total > limits.max_bytes:
                    raise DataError(
                        f"{path}: its arrays take {_mib(total)} or more once unpacked ({member.filename!r} "
                        f"declares shape {tuple(shape)} of {dtype}), over the limit of {_mib(limits.max_bytes)} "
                        "(raise REDLINE_MAX_DATA_BYTES to read it)"
                    )
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None


def _npy_header(handle, path: Path, name: str) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, _fortran, dtype = fmt.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = fmt.read_array_header_2_0(handle)
        else:  # pragma: no cover - numpy rejects other versions in read_magic
            raise ValueError(f"unknown .npy version {version}")
    except ValueError as exc:
        raise DataError(f"{path}: member {name!r} is not a .npy array ({' '.join(str(exc).split())})") from None
    return tuple(int(d) for d in shape), np.dtype(dtype)


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MiB"
