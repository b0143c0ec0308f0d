"""Write a Report in any of the supported formats, each file atomically."""
from __future__ import annotations

import enum
import importlib
from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError
from ..util.atomic import atomic_write_text, writing_output
from .model import Report


class Format(str, enum.Enum):
    JSON = "json"
    MD = "md"
    HTML = "html"
    SARIF = "sarif"
    JUNIT = "junit"

    @property
    def filename(self) -> str:
        """The file name ``write_all`` uses for this format."""
        return _FILENAMES[self]

    @classmethod
    def parse(cls, value: str | Format) -> Format:
        if isinstance(value, Format):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            choices = ", ".join(f.value for f in cls)
            raise UsageError(f"unknown report format {value!r} (choose from {choices})") from None


_FILENAMES = {
    Format.JSON: "report.json",
    Format.MD: "report.md",
    Format.HTML: "report.html",
    Format.SARIF: "report.sarif",
    Format.JUNIT: "report.junit.xml",
}
# One small module per format, each with render(report, base_dir) -> str.
_MODULES = {
    Format.JSON: "json_writer",
    Format.MD: "markdown",
    Format.HTML: "html",
    Format.SARIF: "sarif",
    Format.JUNIT: "junit",
}


def parse_formats(spec: str | Iterable[str | Format]) -> list[Format]:
    """``"json,html"`` -> ``[Format.JSON, Format.HTML]`` (order kept, duplicates dropped)."""
    tokens = spec.split(",") if isinstance(spec, str) else list(spec)
    formats: list[Format] = []
    for token in tokens:
        if isinstance(token, str) and not token.strip():
            continue
        fmt = Format.parse(token)
        if fmt not in formats:
            formats.append(fmt)
    if not formats:
        choices = ", ".join(f.value for f in Format)
        raise UsageError(f"no report format given (choose from {choices})")
    return formats


def render(report: Report, fmt: str | Format, base_dir: str | Path | None = None) -> str:
    """The report as text in ``fmt``; ``base_dir`` is where evidence paths are resolved (HTML plots)."""
    fmt = Format.parse(fmt)
    module = importlib.import_module(f"{__package__}.{_MODULES[fmt]}")
    if base_dir is None and report.out_dir is not None:
        base_dir = report.out_dir
    return module.render(report, Path(base_dir) if base_dir is not None else None)


def write(report: Report, fmt: str | Format, path: str | Path) -> Path:
    """Write ``report`` as ``fmt`` to ``path``.

    Evidence paths resolve against ``report.out_dir``, or else the folder of ``path``.
    """
    path = Path(path)
    base_dir = Path(report.out_dir) if report.out_dir is not None else path.parent
    text = render(report, fmt, base_dir)
    with writing_output(path):  # a full disk is an OutputError naming the file
        atomic_write_text(path, text)
    return path


def write_all(
    report: Report, out_dir: str | Path, formats: str | Iterable[str | Format] | None = None
) -> dict[Format, Path]:
    """Write each of ``formats`` (default: all) into ``out_dir`` under its standard file name.

    A file that cannot be written (no space, a file-size limit, a read-only folder) raises
    :class:`~redline.errors.OutputError` naming it."""
    out_dir = Path(out_dir)
    chosen = list(Format) if formats is None else parse_formats(formats)
    base_dir = Path(report.out_dir) if report.out_dir is not None else out_dir
    written: dict[Format, Path] = {}
    for fmt in chosen:
        path = out_dir / fmt.filename
        text = render(report, fmt, base_dir)
        with writing_output(path):  # a full disk is an OutputError naming the file
            atomic_write_text(path, text)
        written[fmt] = path
    return written
