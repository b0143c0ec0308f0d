"""The guard policy (``guard.yaml``): which clients may ask, within which limits, behind
which defences. ``redline guard`` serves it and ``redline scan --defend`` applies it in
process; both read it here.

Example::

    version: 1
    upstream: http://127.0.0.1:8000/predict      # optional; --upstream overrides
    clients:                                     # keys are stored as their SHA-256 only
      - {name: alice, key_sha256: "9f86d08..."}
    limits: {max_body_bytes: 1048576, max_batch: 256, upstream_timeout_s: 10, body_timeout_s: 10}
    state: sqlite:///guard-state.db              # or memory, or redis://127.0.0.1:6379/0
    audit_log: guard-audit.jsonl
    metrics: {token_sha256: "..."}               # optional; without it /metrics answers loopback only
    input: {shape: [64], dtype: float32, lower: 0, upper: 16}   # optional, as in a target config
    defences:                                    # the first faces the client, the last the model
      - squeeze: {levels: 17}
      - round: {decimals: 2}

Each defence entry is ``policy_key: {constructor parameters}``. The loader finds the class
by its :attr:`~redline.defences.base.Defence.policy_key` among the Defence subclasses that
exist once every module of this package is imported, so a new defence module needs no
list here. Relative paths (``audit_log``, ``sqlite:///file``) are read from the policy's
folder; ``sqlite:////abs/path`` (four slashes) is absolute, as in SQLAlchemy URLs.

Every problem is a one-line :class:`~redline.errors.UsageError` naming the file and the
key path (``guard.yaml: defences[1].round: unknown parameter 'bits' (expected: decimals)``).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import pkgutil
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..targets.base import InputSpec, Target
from .base import Defence, DefendedTarget
from .state import MemoryState, StateStore

__all__ = [
    "CLIENT_NAME",
    "Client",
    "Limits",
    "Policy",
    "defence_classes",
    "hash_key",
    "load_policy",
    "parse_policy",
]

POLICY_VERSION = 1
_TOP_KEYS = ("version", "upstream", "clients", "limits", "state", "audit_log", "input", "metrics", "defences")
_LIMIT_KEYS = ("max_body_bytes", "max_batch", "upstream_timeout_s", "body_timeout_s")
# Client names end up in state keys, metric labels and the audit log: keep them plain.
CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Modules of this package that hold no defence a policy can name.
_NOT_DEFENCE_MODULES = frozenset({"base", "state", "policy"})


def hash_key(key: str) -> str:
    """The SHA-256 (lower-case hex) under which an API key is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Client:
    """One account of the guard: a name (audit log, metrics, per-client state) and the
    SHA-256 of its API key. The key itself is never kept."""

    name: str
    key_sha256: str

    def __repr__(self) -> str:  # the hash is not secret, but a log has no use for it
        return f"Client({self.name!r})"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on one request, enforced before any defence sees it."""

    max_body_bytes: int = 1024 * 1024  # request body, checked before it is parsed
    max_batch: int = 256  # rows per request
    upstream_timeout_s: float = 10.0  # the model's whole answer, from connecting to the last byte
    body_timeout_s: float = 10.0  # a client's whole request body (slow clients are cut off)


@dataclasses.dataclass(frozen=True)
class Policy:
    """A validated guard policy. ``defences`` are in file order (the first faces the
    client); they are the shared prototypes, and :meth:`defences_for` gives the list one
    client is served by, in :class:`~redline.defences.base.DefendedTarget` order."""

    source: str = "guard policy"
    digest: str = ""  # SHA-256 of the file's bytes: which policy version made a decision
    upstream: str | None = None
    clients: tuple[Client, ...] = ()
    limits: Limits = Limits()
    state: str | None = None  # None: the host's default store
    audit_log: Path | None = None  # None: the host's default file
    input_spec: InputSpec | None = None  # what one row looks like, when the policy says
    # SHA-256 of the token a scraper presents for GET /metrics; None: loopback scrapers only
    metrics_token_sha256: str | None = None
    defences: tuple[Defence, ...] = ()
    entries: tuple[tuple[str, dict[str, Any]], ...] = ()  # (policy_key, parameters), file order

    def client_named(self, name: str) -> Client | None:
        return next((c for c in self.clients if c.name == name), None)

    def with_clients(self, extra: list[Client], source: str) -> Policy:
        """This policy with ``extra`` clients added (``--keys FILE``); a name or a key used
        twice is an error naming ``source``."""
        merged = list(self.clients)
        for client in extra:
            _check_unique(merged, client, source)
            merged.append(client)
        return dataclasses.replace(self, clients=tuple(merged))

    def check(self, target: Target) -> None:
        """Check every defence against ``target`` (the model the policy fronts)."""
        for index, (defence, (key, _)) in enumerate(zip(self.defences, self.entries)):
            try:
                defence.check(target)
            except UsageError as exc:
                raise UsageError(f"{self.source}: defences[{index}].{key}: {exc}") from None

    def defences_for(self, client: str, state: StateStore) -> list[Defence]:
        """The defences serving ``client``, keeping their per-client state in ``state``,
        listed from the model outwards (reversed file order), as DefendedTarget takes them."""
        return [defence.for_client(client, state) for defence in reversed(self.defences)]

    def defend(self, target: Target, client: str = "local", state: StateStore | None = None) -> DefendedTarget:
        """``target`` behind this policy's defences for one client (``scan --defend``);
        state is kept in memory unless a store is given."""
        return DefendedTarget(target, self.defences_for(client, state if state is not None else MemoryState()))


def load_policy(path: str | Path) -> Policy:
    """Read and validate a guard policy file."""
    from ..util.safe_yaml import load_yaml_text, read_yaml_bytes

    path = Path(path)
    raw = read_yaml_bytes(path, f"guard policy {path}")  # bounded: a FIFO, /dev/zero or a huge file is refused
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the guard policy is not UTF-8 text") from None
    data = load_yaml_text(text, str(path))  # bounded: depth, aliases, size
    return parse_policy(data, source=str(path), base_dir=path.resolve().parent,
                        digest=hashlib.sha256(raw).hexdigest())


def parse_policy(data: Any, *, source: str = "guard policy", base_dir: Path | None = None, digest: str = "") -> Policy:
    """Validate policy data (as loaded from YAML); raise UsageError naming the bad key."""
    return _Parser(source, base_dir or Path.cwd()).parse(data, digest)


@functools.cache
def _import_defence_modules() -> None:
    """Import every module of this package once, so that their Defence subclasses exist.
    (A defence module imports its heavy or optional packages inside its functions.)"""
    package = __package__ or "redline.defences"
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not module.ispkg and not module.name.startswith("_") and module.name not in _NOT_DEFENCE_MODULES:
            importlib.import_module(f"{package}.{module.name}")


def defence_classes() -> dict[str, type[Defence]]:
    """Every Defence subclass that declares its own ``policy_key``, by that key.

    A class that only inherits its parent's key is not listed (it would claim the
    parent's name); two different classes claiming one key is a programming error.
    """
    _import_defence_modules()
    found: dict[str, type[Defence]] = {}
    stack, seen = list(Defence.__subclasses__()), set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        key = cls.__dict__.get("policy_key")
        if key is None:
            continue
        other = found.get(key)
        if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
            raise UsageError(
                f"two defences claim the policy key {key!r}: {other.__module__}.{other.__qualname__} "
                f"and {cls.__module__}.{cls.__qualname__}"
            )
        found[key] = cls
    return found


def _check_unique(clients: list[Client], client: Client, where: str) -> None:
    for other in clients:
        if other.name == client.name:
            raise UsageError(f"{where}: client {client.name!r} is declared twice")
        if other.key_sha256 == client.key_sha256:
            raise UsageError(f"{where}: clients {other.name!r} and {client.name!r} have the same key")


class _Parser:
    """Checks one policy mapping, naming the offending key path in every error."""

    def __init__(self, source: str, base_dir: Path):
        self.source = source
        self.base_dir = base_dir

    def fail(self, key: str, problem: str) -> UsageError:
        return UsageError(f"{self.source}: {key}: {problem}")

    def parse(self, data: Any, digest: str) -> Policy:
        if not isinstance(data, Mapping):
            raise UsageError(f"{self.source}: the guard policy must be a mapping of keys to values")
        for key in data:
            if key not in _TOP_KEYS:
                raise self.fail(str(key), f"unknown key (expected one of: {', '.join(_TOP_KEYS)})")
        version = data.get("version", POLICY_VERSION)
        if version != POLICY_VERSION or isinstance(version, bool):
            raise self.fail("version", f"this redline reads policy version {POLICY_VERSION}, not {version!r}")
        defences, entries = self.defences(data.get("defences"))
        return Policy(
            source=self.source,
            digest=digest,
            upstream=self.upstream(data.get("upstream")),
            clients=self.clients(data.get("clients")),
            limits=self.limits(data.get("limits")),
            state=self.state(data.get("state")),
            audit_log=self.path(data.get("audit_log"), "audit_log"),
            input_spec=self.input(data.get("input")),
            metrics_token_sha256=self.metrics(data.get("metrics")),
            defences=defences,
            entries=entries,
        )

    # -- sections ------------------------------------------------------------------------
    def upstream(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or urllib.parse.urlsplit(value).scheme not in ("http", "https") \
                or not urllib.parse.urlsplit(value).hostname:
            raise self.fail("upstream", "must be an http:// or https:// URL")
        return value

    def clients(self, value: Any) -> tuple[Client, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail("clients", f"must be a list of {{name: ..., key_sha256: ...}}, got {type(value).__name__}")
        clients: list[Client] = []
        for i, item in enumerate(value):
            where = f"clients[{i}]"
            item = self.mapping(item, where)
            self.known(item, ("name", "key_sha256"), where)
            name, digest = item.get("name"), item.get("key_sha256")
            if not isinstance(name, str) or not CLIENT_NAME.fullmatch(name):
                raise self.fail(f"{where}.name", "must be 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit)")
            if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
                raise self.fail(f"{where}.key_sha256", "must be the 64 hex digits of the key's SHA-256 (never the key itself)")
            client = Client(name, digest.lower())
            _check_unique(clients, client, f"{self.source}: {where}")
            clients.append(client)
        return tuple(clients)

    def metrics(self, value: Any) -> str | None:
        if value is None:
            return None
        value = self.mapping(value, "metrics")
        self.known(value, ("token_sha256",), "metrics")
        digest = value.get("token_sha256")
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            raise self.fail("metrics.token_sha256", "must be the 64 hex digits of the token's SHA-256 (never the token)")
        return digest.lower()

    def limits(self, value: Any) -> Limits:
        if value is None:
            return Limits()
        value = self.mapping(value, "limits")
        self.known(value, _LIMIT_KEYS, "limits")
        fields: dict[str, Any] = {}
        for key in ("max_body_bytes", "max_batch"):
            if key in value:
                number = value[key]
                if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                    raise self.fail(f"limits.{key}", f"must be a whole number of at least 1, got {number!r}")
                fields[key] = number
        for key in ("upstream_timeout_s", "body_timeout_s"):
            if key in value:
                number = value[key]
                if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 < number < 3600:
                    raise self.fail(f"limits.{key}", f"must be a number of seconds above 0 and below 3600, got {number!r}")
                fields[key] = float(number)
        return Limits(**fields)

    def state(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail("state", f"must be memory, sqlite:///FILE or redis://HOST:PORT/DB, got {type(value).__name__}")
        if value == "memory":
            return value
        scheme = urllib.parse.urlsplit(value).scheme
        if scheme == "sqlite":
            if not value.startswith("sqlite:///") or len(value) == len("sqlite:///"):
                raise self.fail("state", f"a SQLite store is sqlite:///FILE (relative) or sqlite:////ABS/FILE, got {value!r}")
            file = value[len("sqlite:///"):]
            return "sqlite:///" + str((self.base_dir / file).resolve())
        if scheme in ("redis", "rediss", "unix"):
            return value
        raise self.fail("state", f"must be memory, sqlite:///FILE or redis://HOST:PORT/DB, got {value!r}")

    def path(self, value: Any, key: str) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a file path")
        return (self.base_dir / value).resolve()

    def input(self, value: Any) -> InputSpec | None:
        if value is None:
            return None
        from ..targets.config import TargetConfig

        config = TargetConfig.from_mapping({"input": value}, source=self.source)  # same keys, same messages
        if config.input_shape is None:
            raise self.fail("input.shape", "is required when input is given (one row, no batch axis)")
        return config.apply_input(None)

    def defences(self, value: Any) -> tuple[tuple[Defence, ...], tuple[tuple[str, dict[str, Any]], ...]]:
        if value is None:
            return (), ()
        if not isinstance(value, list):
            raise self.fail("defences", f"must be a list of {{policy_key: {{parameters}}}}, got {type(value).__name__}")
        classes = defence_classes()
        built, entries = [], []
        for i, item in enumerate(value):
            where = f"defences[{i}]"
            if isinstance(item, str):  # `- labels_only` is `- labels_only: {}`
                item = {item: None}
            if not isinstance(item, Mapping) or len(item) != 1:
                raise self.fail(where, "must be one policy_key: {parameters} entry")
            (key, params), = item.items()
            if params is None:
                params = {}
            cls = classes.get(key)
            if cls is None:
                raise self.fail(where, self._unknown_defence(key, classes))
            params = dict(self.mapping(params, f"{where}.{key}"))
            for name in params:
                if not isinstance(name, str):
                    raise self.fail(f"{where}.{key}", f"parameter names must be strings, got {name!r}")
            built.append(self.build(cls, params, f"{where}.{key}"))
            entries.append((key, params))
        return tuple(built), tuple(entries)

    def build(self, cls: type[Defence], params: dict[str, Any], where: str) -> Defence:
        signature = inspect.signature(cls)
        try:
            signature.bind(**params)
        except TypeError:
            accepted = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            unknown = [n for n in params if n not in accepted]
            missing = [p.name for p in signature.parameters.values()
                       if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in params]
            expected = ", ".join(accepted) or "none"
            if unknown:
                raise self.fail(where, f"unknown parameter {unknown[0]!r} (expected: {expected})") from None
            raise self.fail(where, f"missing parameter {missing[0]!r}" if missing else f"bad parameters (expected: {expected})") from None
        try:
            return cls(**params)
        except UsageError as exc:
            raise self.fail(where, str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise self.fail(where, " ".join(str(exc).split()) or type(exc).__name__) from None

    @staticmethod
    def _unknown_defence(key: Any, classes: dict[str, type[Defence]]) -> str:
        return f"unknown defence {key!r} (known: {', '.join(sorted(classes)) or 'none'})"

    # -- values --------------------------------------------------------------------------
    def known(self, data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(f"{where}.{key}", f"unknown key (expected one of: {', '.join(allowed)})")

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        return value
