"""Readers for data files: ``.npz`` archives of arrays and CSV tables with a header row."""
from __future__ import annotations

import csv
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import SplitOptions, dataset_from_arrays
from .base import Dataset
from .limits import DataLimits, check_npz

# Text that stands for "no value" in a CSV cell; reported as missing rather than as text.
_MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}


def load_npz(path: Path, options: SplitOptions, spec: str) -> Dataset:
    """Arrays by role (``x_train`` ... ``y_pool``) or one ``x, y`` pair from an ``.npz`` file.

    Optional string arrays ``feature_names`` and ``class_names`` are picked up. Object
    arrays are refused: loading them would unpickle, i.e. run code from the file.
    """
    _require_file(path)
    with path.open("rb") as handle:
        if handle.read(2) != b"PK":  # np.load would otherwise try other formats, pickle among them
            raise DataError(f"{path}: not an .npz archive (no zip header)")
    check_npz(path, DataLimits.from_environment())  # declared shapes, before anything is unpacked
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(f"{path}: holds object arrays; only numeric and string arrays are read") from None
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    feature_names = arrays.pop("feature_names", None)
    class_names = arrays.pop("class_names", None)
    return dataset_from_arrays(
        arrays,
        name=path.stem,
        spec=spec,
        options=options,
        feature_names=None if feature_names is None else [str(v) for v in feature_names],
        class_names=None if class_names is None else [str(v) for v in class_names],
    )


def load_csv(path: Path, label: str, options: SplitOptions, spec: str) -> Dataset:
    """A CSV table with a header row: ``label`` names the label column, every other column is a feature."""
    header, rows = _read_rows(path)
    if label not in header:
        shown = ", ".join(header[:20]) + (f", ... ({len(header)} columns)" if len(header) > 20 else "")
        raise DataError(f"{path}: no column {label!r} for the label; columns are {shown}")
    label_at = header.index(label)
    feature_names = [name for i, name in enumerate(header) if i != label_at]
    if not feature_names:
        raise DataError(f"{path}: no feature columns besides the label {label!r}")
    if not rows:
        raise DataError(f"{path}: has a header but no data rows")
    columns = list(zip(*(values for _, values in rows)))
    line_numbers = [line for line, _ in rows]
    x = np.stack(
        [_numeric_column(columns[i], header[i], line_numbers, path) for i in range(len(header)) if i != label_at],
        axis=1,
    )
    y = _label_column(columns[label_at], label, line_numbers, path, options.task)
    return dataset_from_arrays({"x": x, "y": y}, name=path.stem, spec=spec, options=options, feature_names=feature_names)


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"not a file: {path}")


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank rows with their line numbers; every row as wide as the header."""
    _require_file(path)
    limits = DataLimits.from_environment()
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise DataError(
            f"{path}: {size:,} bytes, over the limit of {limits.max_bytes:,} (raise REDLINE_MAX_DATA_BYTES to read it)"
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty")
            header = [name.strip() for name in header]
            counts = Counter(header)  # one pass: a wide header must not cost columns squared
            duplicates = sorted(name for name, n in counts.items() if n > 1)
            if duplicates:
                shown = ", ".join(duplicates[:10]) + (f" ... ({len(duplicates)} in all)" if len(duplicates) > 10 else "")
                raise DataError(f"{path}: duplicate column names {shown}")
            max_rows = max(1, limits.max_csv_cells // max(1, len(header)))
            rows = []
            for values in reader:
                if len(rows) >= max_rows:
                    raise DataError(
                        f"{path}: more than {limits.max_csv_cells:,} cells ({len(header):,} columns), "
                        "over the limit (raise REDLINE_MAX_CSV_CELLS to read it)"
                    )
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise DataError(
                        f"{path}: line {reader.line_num} has {len(values)} fields, the header has {len(header)}"
                    )
                rows.append((reader.line_num, [v.strip() for v in values]))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    return header, rows


def _numeric_column(values: tuple[str, ...], name: str, lines: list[int], path: Path) -> np.ndarray:
    for value, line in zip(values, lines):
        if value.lower() in _MISSING:
            raise DataError(f"{path}: feature column {name!r} has a missing value on line {line}")
    try:
        column = np.array(values, dtype=np.float64)
    except ValueError:
        line, value = next((line, v) for v, line in zip(values, lines) if not _is_number(v))
        raise DataError(
            f"{path}: feature column {name!r} is not numeric (line {line}: {value!r}); encode it as numbers first"
        ) from None
    if not np.isfinite(column).all():
        line = lines[int(np.argmax(~np.isfinite(column)))]
        raise DataError(f"{path}: feature column {name!r} has an infinite value on line {line}")
    return column


def _label_column(values: tuple[str, ...], name: str, lines: list[int], path: Path, task: str) -> np.ndarray:
    for value, line in zip(values, lines):
        if value.lower() in _MISSING:
            raise DataError(f"{path}: label column {name!r} has a missing value on line {line}")
    if all(_is_number(v) for v in values):
        return np.array(values, dtype=np.float64)
    if task == "regression":
        line, value = next((line, v) for v, line in zip(values, lines) if not _is_number(v))
        raise DataError(f"{path}: label column {name!r} must be numeric for regression (line {line}: {value!r})")
    return np.array(values, dtype=str)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
