"""Atomic file writes: a temporary file in the same folder, then ``os.replace``."""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError

# The OS errors that say the storage itself is out (not what a file holds or where it is):
# whatever file they come from, a run cannot go on writing until someone makes room.
STORAGE_FULL = frozenset(code for code in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", None)) if code)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` so that readers see either the old file or the whole new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name opened with "x" (not mkstemp) so the file gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def writing_output(path: str | Path, *, remove_partial: bool = False) -> Iterator[None]:
    """Writes inside this block go to ``path`` in an output folder: an OSError they raise
    (no space, a file-size limit, a read-only or failing file system, no permission) becomes
    an :class:`~redline.errors.OutputError` naming ``path``, which stops a scan instead of
    counting as a check's result. ``remove_partial`` deletes what a failed write left at
    ``path`` (a file written in place, not atomically)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        if remove_partial:
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)
        raise output_error(path, exc) from None


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """``exc`` (an OSError writing ``path``) as an OutputError naming ``path``."""
    if isinstance(exc, OutputError):
        return exc
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc)) or type(exc).__name__
    return OutputError(exc.errno or errno.EIO, reason, str(path))
