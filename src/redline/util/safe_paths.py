"""Paths that stay where they are meant to: inside ``--out``, or beside the YAML that names them.

An output folder may hold links planted by someone else (``artifacts`` -> ``/etc``,
``events.jsonl`` -> ``~/.bashrc``); writing through them would put redline's output
anywhere. A YAML file redline reads may name another file (an incident's ``system:``);
``../../../../etc/passwd`` there must not make redline read, and then quote, files
elsewhere. The helpers here refuse both with a one-line UsageError.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

__all__ = ["out_file", "open_append_nofollow", "open_read_nofollow", "contained_file"]


def out_file(out_dir: str | Path, relative: str) -> Path:
    """The path of ``relative`` inside ``out_dir``, safe to write with a plain ``open``.

    Folders on the way are created; an existing one that is a link (or not a folder) is
    refused, so the file cannot land outside ``out_dir``. A link already standing at the
    file's own place is removed (the write then makes a new, regular file there).
    """
    base = Path(out_dir)
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts or not parts:
        raise UsageError(f"{relative!r} is not a plain path inside {base}")
    base.mkdir(parents=True, exist_ok=True)  # the folder the user named; links are checked below it
    folder = base
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise UsageError(f"{folder} is a link; redline does not write through links in --out")
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} is in the way of redline's output and is not a folder")
        folder.mkdir(exist_ok=True)
    path = folder / parts[-1]
    if path.is_symlink():
        path.unlink()
    return path


def open_append_nofollow(path: Path):
    """Open ``path`` to append text, refusing a link at its place (O_NOFOLLOW); any other
    failure to open it (no space, a read-only file system) is an OutputError."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise UsageError(f"{path} is a link; redline does not write through links in --out") from None
        from .atomic import output_error

        raise output_error(path, exc) from None
    return os.fdopen(fd, "a", encoding="utf-8")


def open_read_nofollow(path: Path):
    """Open ``path`` to read text, refusing a link at its place."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if path.is_symlink():
            raise UsageError(f"{path} is a link; redline does not read its own files through links") from None
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return os.fdopen(fd, "r", encoding="utf-8")


def contained_file(named: str | Path, yaml_path: str | Path, what: str, *, allow_outside: bool = False) -> Path:
    """The file a YAML document names, resolved against the document's folder.

    Unless ``allow_outside``, it must lie inside that folder after links are resolved;
    an absolute path or ``..`` escaping it is a UsageError that names ``what`` and the
    option to pass.
    """
    folder = Path(yaml_path).resolve().parent
    path = Path(named).expanduser()
    path = path if path.is_absolute() else folder / path
    if not allow_outside:
        try:
            path.resolve().relative_to(folder)
        except ValueError:
            raise UsageError(
                f"{what} {str(named)!r} lies outside the folder of {yaml_path}; "
                "move it there or pass --allow-outside-files"
            ) from None
    return path
