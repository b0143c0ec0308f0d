"""The manifest of a model folder: every regular file with its SHA-256, in a canonical order.

Both signing and the ML-BOM describe a folder through this one walk, so the BOM's model
hash and the signature's subject digest agree. Symlinks and special files are refused
outright: a link can point outside the folder, or be re-pointed after signing, and a
device or FIFO has no stable content to hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path

from ..errors import UsageError

SIGNATURE_NAME = "model.sig"
DIGEST_ALGORITHM = "sha256"


@dataclasses.dataclass(frozen=True)
class Resource:
    """One file of the model: its path relative to the folder (POSIX) and its hex digest."""

    name: str
    digest: str
    algorithm: str = DIGEST_ALGORITHM


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason a folder does not match (or cannot be described by) a manifest."""

    kind: str  # changed, missing, extra, symlink, special, unreadable, bad-name, duplicate, signature
    path: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind:<10} {self.path or '-'}{detail}"

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A model's files in canonical (sorted) order; ``ignore_paths`` were left out on purpose."""

    model_name: str
    resources: tuple[Resource, ...]
    ignore_paths: tuple[str, ...] = ()

    @property
    def root_digest(self) -> str:
        """SHA-256 over the raw per-file digests in manifest order (the model_signing v1.0 subject)."""
        return root_digest(self.resources)

    def digests(self) -> dict[str, str]:
        return {r.name: r.digest for r in self.resources}


def root_digest(resources: tuple[Resource, ...] | list[Resource]) -> str:
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource.digest))
    return hasher.hexdigest()


def name_problem(name: object) -> str:
    """Why ``name`` is not a safe manifest path, or "" when it is.

    A safe name is relative, POSIX-separated, and stays inside the folder, so a hostile
    manifest can never make a verifier look at (or a tool write to) a file elsewhere.
    """
    if not isinstance(name, str) or not name:
        return "empty or not a string"
    if "\x00" in name:
        return "contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return "starts with a drive letter"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' component"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return ""


@dataclasses.dataclass
class TreeScan:
    """What a walk of a folder found: regular files (relative names) and entries it refuses."""

    files: list[str]
    problems: list[Problem]


def scan_tree(root: Path, exclude: set[str] | frozenset[str] = frozenset()) -> TreeScan:
    """Every regular file under ``root`` (sorted relative POSIX names), without following links."""
    files: list[str] = []
    problems: list[Problem] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = list(it)
        except OSError as exc:
            problems.append(Problem("unreadable", rel_dir or ".", exc.strerror or str(exc)))
            continue
        for entry in entries:
            name = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if name in exclude:
                continue
            bad_name = name_problem(name)
            if bad_name:
                problems.append(Problem("bad-name", ascii(name)[1:-1], f"file name {bad_name}"))
            elif entry.is_symlink():
                problems.append(Problem("symlink", name, _link_detail(entry.path)))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(name)
            elif entry.is_file(follow_symlinks=False):
                files.append(name)
            else:
                problems.append(Problem("special", name, _special_detail(entry)))
    files.sort()
    problems.sort(key=lambda p: (p.path, p.kind))
    return TreeScan(files, problems)


def hash_file(path: Path) -> str:
    """SHA-256 of a regular file, refusing to follow a link swapped in after the walk."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError(f"{path} is no longer a regular file")
        return hashlib.file_digest(fh, DIGEST_ALGORITHM).hexdigest()


def hash_files(root: Path, names: list[str]) -> tuple[list[Resource], list[Problem]]:
    """Digest each named file; a file that cannot be read becomes a problem, not a crash."""
    resources: list[Resource] = []
    problems: list[Problem] = []
    for name in names:
        try:
            resources.append(Resource(name, hash_file(root / name)))
        except OSError as exc:
            problems.append(Problem("unreadable", name, exc.strerror or str(exc)))
    return resources, problems


def model_folder(directory: str | os.PathLike) -> Path:
    """The folder to describe, or a one-line UsageError when it is not one."""
    root = Path(directory)
    if not root.exists():
        raise UsageError(f"{root}: no such directory")
    if not root.is_dir():
        raise UsageError(f"{root}: not a directory (sign, verify and bom take a model folder)")
    return root


def describe_folder(
    root: Path, exclude: set[str] | frozenset[str] = frozenset(), *, purpose: str = "describe"
) -> Manifest:
    """The manifest of ``root`` for signing or a BOM; refuses links, special files and bad names.

    ``purpose`` is the verb the error message uses ("sign", "describe").
    """
    scan = scan_tree(root, exclude)
    resources, unreadable = hash_files(root, scan.files)
    problems = scan.problems + unreadable
    if problems:
        first = problems[0]
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        hint = ""
        if any(p.kind == "symlink" for p in problems):
            hint = "; copy the folder with `cp -rL` to replace links by the files they point to"
        raise UsageError(f"cannot {purpose} {root}: {first.kind} {first.path} ({first.detail}){more}{hint}")
    if not resources:
        raise UsageError(f"{root}: no files to {purpose}")
    name = root.resolve().name or str(root)
    return Manifest(name, tuple(resources), tuple(sorted(exclude)))


def relative_inside(root: Path, path: Path) -> str | None:
    """``path`` as a manifest name when it lies inside ``root``, else None."""
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def _link_detail(path: str) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return f"points to {target}; symlinks are refused"


def _special_detail(entry: os.DirEntry) -> str:
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return "not a regular file"
    for test, label in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return f"{label}, not a regular file"
    return "not a regular file"
