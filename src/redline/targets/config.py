"""The target config file (``--target-config``): how to reach a target and what it accepts.

Example::

    headers: {X-Api-Key: "${SCORING_KEY}"}     # ${VAR} reads the environment
    auth: {bearer: "${SCORING_TOKEN}"}         # or {basic: {username: u, password: p}}
    timeout: 10          # seconds per request, from connecting to the last byte of the answer
    max_response_bytes: 67108864   # longest answer read (default 64 MiB); longer is an error
    redirects: same_origin         # or none, or cross_origin (credentials never leave the first origin)
    retries: 3           # extra attempts after a failed request
    backoff: 0.5         # first wait between attempts, doubled each time
    rate_limit: 20       # requests per second
    max_batch: 64        # rows per request
    request: {inputs_key: instances, fields: {model: v2}}
    response: {probabilities_key: result.scores, labels_key: result.label}
    # or, for a two-class model answering one number per row, its class-1 probability:
    # response: {positive_probability_key: score}
    outputs: probabilities          # or labels (wraps local models to answer labels only)
    input: {shape: [30], dtype: float32, lower: 0, upper: 1}   # or one bound per feature: lower: [0, 18, ...]
    n_classes: 2
    class_names: [approve, refuse]   # class 0, 1, ... as the endpoint names and orders them
    feature_names: [age, income, ...]
    constraints: {immutable: [age], integer: [children], ranges: {income: [0, 1e6]}}
    train: mypackage.training:train  # or path/to/train.py:train; train(x, y) -> model
    kind: policy         # the target is an agent: observations in, actions out (default: model)
    baseline: zoo:fair_logreg   # the bare model behind a guarded endpoint: the scan compares the two

For ``kind: policy`` the request carries ``{"observations": [...]}`` (or ``request.inputs_key``)
and the answer ``{"actions": [...]}`` (``response.actions_key``); the other keys apply as for models.

Everything is optional. Unknown keys and wrong types are errors that name the key.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from .base import FeatureConstraints, InputSpec

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TRAIN_REF = re.compile(r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")
_TOP_KEYS = (
    "headers",
    "auth",
    "timeout",
    "max_response_bytes",
    "redirects",
    "retries",
    "backoff",
    "rate_limit",
    "max_batch",
    "request",
    "response",
    "outputs",
    "input",
    "baseline",
    "n_classes",
    "class_names",
    "feature_names",
    "constraints",
    "train",
    "kind",
)
TARGET_KINDS = ("model", "policy")
_CONSTRAINT_KEYS = ("immutable", "integer", "categorical", "ranges")
_REDIRECT_POLICIES = ("none", "same_origin", "cross_origin")
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """Parsed target config; see the module docstring for the file format.

    Secrets (headers, auth) are left out of ``repr`` so they do not end up in logs.
    """

    headers: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    auth: tuple[str, ...] | None = dataclasses.field(
        default=None, repr=False
    )  # ("bearer", token) / ("basic", user, pw)
    timeout: float = 30.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    redirects: str = "same_origin"
    retries: int = 3
    backoff: float = 0.5
    rate_limit: float | None = None
    max_batch: int | None = None
    inputs_key: str = "inputs"
    request_fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    probabilities_key: str = "probabilities"
    labels_key: str = "labels"
    positive_probability_key: str | None = None  # a two-class model's P(class 1), one number per row
    outputs: str | None = None
    input_shape: tuple[int, ...] | None = None
    input_dtype: str | None = None
    lower: float | tuple[float, ...] | None = None
    upper: float | tuple[float, ...] | None = None
    n_classes: int | None = None
    # The endpoint's classes by name, in its order (its probability columns, its label numbers);
    # text labels in answers are read through them (see HttpTarget).
    class_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    constraints: Mapping[str, Any] | None = None
    train: str | None = None
    kind: str = "model"
    # The bare model a guarded endpoint fronts (a target spec); the scan runs its checks on
    # both and reports what the guard's defences buy (redline.pipeline.defended).
    baseline: str | None = None
    observations_key: str = "observations"
    actions_key: str = "actions"
    source: str = "target config"
    base_dir: Path | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, *, source: str = "target config", base_dir: Path | None = None
    ) -> TargetConfig:
        """Validate config data (as loaded from YAML); raise UsageError naming the bad key."""
        return _Parser(source).parse(data or {}, base_dir)

    def request_headers(self) -> dict[str, str]:
        """Headers to send, with the Authorization header made from ``auth``."""
        headers = dict(self.headers)
        if self.auth is not None:
            if self.auth[0] == "bearer":
                headers["Authorization"] = f"Bearer {self.auth[1]}"
            else:
                pair = f"{self.auth[1]}:{self.auth[2]}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    def apply_input(self, spec: InputSpec | None, feature_names: list[str] | None = None) -> InputSpec | None:
        """``spec`` with what the config states about inputs (shape, dtype, bounds, constraints).

        Constraints may name features from the config's ``feature_names`` or, failing that,
        from ``feature_names`` (typically the data set's).
        """
        shape = self.input_shape if self.input_shape is not None else (spec.shape if spec else None)
        if shape is None:
            return None
        base = spec or InputSpec(shape=shape)
        constraints = self.feature_constraints(feature_names) if self.constraints else base.constraints
        # Bounds the config states replace what the data showed: a number bounds every
        # feature alike, a list bounds each feature. Features the config leaves open keep
        # the data's per-feature bounds when the shape is the data's.
        same_shape = tuple(shape) == tuple(base.shape)
        feature_lower = base.feature_lower if same_shape else None
        feature_upper = base.feature_upper if same_shape else None
        lower, upper = base.lower, base.upper
        if self.lower is not None:
            lower, feature_lower = self._bound(self.lower, "lower", shape, min)
        if self.upper is not None:
            upper, feature_upper = self._bound(self.upper, "upper", shape, max)
        if lower >= upper:
            raise UsageError(f"{self.source}: input: lower ({lower}) must be below upper ({upper})")
        if (feature_lower is None) != (feature_upper is None):  # one side per feature, the other shared
            n = int(np.prod(shape))
            feature_lower = feature_lower or (float(lower),) * n
            feature_upper = feature_upper or (float(upper),) * n
        if feature_lower is not None and any(a >= b for a, b in zip(feature_lower, feature_upper)):
            bad = next(i for i, (a, b) in enumerate(zip(feature_lower, feature_upper)) if a >= b)
            raise UsageError(f"{self.source}: input: feature {bad}'s lower bound must be below its upper bound")
        return InputSpec(
            shape=tuple(shape),
            dtype=self.input_dtype or base.dtype,
            lower=lower,
            upper=upper,
            constraints=constraints,
            feature_lower=feature_lower,
            feature_upper=feature_upper,
        )

    def _bound(self, value, key: str, shape, envelope) -> tuple[float, tuple[float, ...] | None]:
        """(shared bound, per-feature bounds or None) from a config number or list."""
        if not isinstance(value, tuple):
            return float(value), None
        n = int(np.prod(shape))
        if len(value) != n:
            raise UsageError(f"{self.source}: input.{key}: {len(value)} values given for {n} features")
        return float(envelope(value)), tuple(float(v) for v in value)

    def feature_constraints(self, feature_names: list[str] | None = None) -> FeatureConstraints:
        names = list(self.feature_names) if self.feature_names else feature_names
        try:
            return FeatureConstraints.from_mapping(dict(self.constraints or {}), names)
        except TargetError as exc:
            raise UsageError(f"{self.source}: constraints: {exc}") from None


def load_target_config(path: str | Path) -> TargetConfig:
    """Read and validate a YAML target config file."""
    from ..util.safe_yaml import load_yaml_file

    path = Path(path)
    data = load_yaml_file(path, "target config")  # bounded: size, depth, aliases
    return TargetConfig.from_mapping(data, source=str(path), base_dir=path.resolve().parent)


class _Parser:
    """Checks one config mapping, naming the offending key in every error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str) -> UsageError:
        return UsageError(f"{self.source}: {key}: {problem}")

    def parse(self, data: Any, base_dir: Path | None) -> TargetConfig:
        if not isinstance(data, Mapping):
            raise UsageError(f"{self.source}: the config must be a mapping of keys to values")
        self.known(data, _TOP_KEYS, "")
        fields: dict[str, Any] = {"source": self.source, "base_dir": base_dir}
        if "headers" in data:
            headers = self.mapping(data["headers"], "headers")
            fields["headers"] = {
                self.header_name(k): self.header_value(self.expand(self.string(v, f"headers.{k}"), f"headers.{k}"),
                                                       f"headers.{k}")
                for k, v in headers.items()
            }
        if "auth" in data:
            fields["auth"] = self.auth(data["auth"])
        for key, minimum in (("timeout", 0.0), ("backoff", 0.0), ("rate_limit", 0.0)):
            if key in data:
                fields[key] = self.number(data[key], key, minimum, strict=key != "backoff")
        if "redirects" in data:
            if data["redirects"] not in _REDIRECT_POLICIES:
                raise self.fail("redirects", f"must be one of {', '.join(_REDIRECT_POLICIES)}, got {data['redirects']!r}")
            fields["redirects"] = data["redirects"]
        for key, minimum in (("retries", 0), ("max_batch", 1), ("n_classes", 2), ("max_response_bytes", 1)):
            if key in data:
                fields[key] = self.integer(data[key], key, minimum)
        if "request" in data:
            request = self.mapping(data["request"], "request")
            self.known(request, ("inputs_key", "fields"), "request.")
            if "inputs_key" in request:
                fields["inputs_key"] = self.key_path(request["inputs_key"], "request.inputs_key")
                fields["observations_key"] = fields["inputs_key"]
            if "fields" in request:
                fields["request_fields"] = dict(self.mapping(request["fields"], "request.fields"))
        if "response" in data:
            response = self.mapping(data["response"], "response")
            self.known(response, ("probabilities_key", "labels_key", "actions_key", "positive_probability_key"),
                       "response.")
            for key in ("probabilities_key", "labels_key", "actions_key", "positive_probability_key"):
                if key in response:
                    fields[key] = self.key_path(response[key], f"response.{key}")
        if "outputs" in data:
            if data["outputs"] not in ("probabilities", "labels"):
                raise self.fail("outputs", f"must be 'probabilities' or 'labels', got {data['outputs']!r}")
            fields["outputs"] = data["outputs"]
        if "input" in data:
            fields.update(self.input(data["input"]))
        if "kind" in data:
            if data["kind"] not in TARGET_KINDS:
                raise self.fail("kind", f"must be one of {', '.join(TARGET_KINDS)}, got {data['kind']!r}")
            fields["kind"] = data["kind"]
        if "feature_names" in data:
            names = data["feature_names"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise self.fail("feature_names", "must be a list of strings")
            fields["feature_names"] = tuple(names)
        if "class_names" in data:
            fields["class_names"] = self.class_names(data["class_names"], fields.get("n_classes"))
        if "constraints" in data:
            fields["constraints"] = self.constraints(data["constraints"])
        if "train" in data:
            train = data["train"]
            if not isinstance(train, str) or not _TRAIN_REF.match(train):
                raise self.fail(
                    "train", f"must name a function as 'module:function' or 'file.py:function', got {train!r}"
                )
            fields["train"] = train
        if "baseline" in data:
            fields["baseline"] = self.string(data["baseline"], "baseline")
        config = TargetConfig(**fields)
        if config.positive_probability_key is not None:
            if config.n_classes not in (None, 2):
                raise self.fail("response.positive_probability_key",
                                f"reads one probability per row, a two-class model's; n_classes is {config.n_classes}")
            if config.outputs == "labels":
                raise self.fail("response.positive_probability_key", "reads probabilities; outputs is labels")
        if config.constraints and config.feature_names:
            config.feature_constraints()  # names are checked now, while the file is at hand
        return config

    # -- sections ------------------------------------------------------------------------
    def auth(self, value: Any) -> tuple[str, ...]:
        auth = self.mapping(value, "auth")
        if len(auth) != 1 or next(iter(auth)) not in ("bearer", "basic"):
            raise self.fail("auth", "must be {bearer: TOKEN} or {basic: {username: ..., password: ...}}")
        if "bearer" in auth:
            token = self.expand(self.string(auth["bearer"], "auth.bearer"), "auth.bearer")
            return ("bearer", self.header_value(token, "auth.bearer"))
        basic = self.mapping(auth["basic"], "auth.basic")
        self.known(basic, ("username", "password"), "auth.basic.")
        if "username" not in basic or "password" not in basic:
            raise self.fail("auth.basic", "needs both username and password")
        return (
            "basic",
            self.expand(self.string(basic["username"], "auth.basic.username"), "auth.basic.username"),
            self.expand(self.string(basic["password"], "auth.basic.password"), "auth.basic.password"),
        )

    def input(self, value: Any) -> dict[str, Any]:
        spec = self.mapping(value, "input")
        self.known(spec, ("shape", "dtype", "lower", "upper"), "input.")
        out: dict[str, Any] = {}
        if "shape" in spec:
            shape = spec["shape"]
            if (
                not isinstance(shape, list)
                or not shape
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
            ):
                raise self.fail("input.shape", "must be a non-empty list of positive integers (one row, no batch axis)")
            out["input_shape"] = tuple(shape)
        if "dtype" in spec:
            if spec["dtype"] not in ("float32", "float64"):
                raise self.fail("input.dtype", f"must be float32 or float64, got {spec['dtype']!r}")
            out["input_dtype"] = spec["dtype"]
        for key in ("lower", "upper"):
            if key in spec:
                value = spec[key]
                if isinstance(value, list):  # one bound per feature
                    if not value:
                        raise self.fail(f"input.{key}", "must be a number or a non-empty list of numbers")
                    out[key] = tuple(self.number(v, f"input.{key}") for v in value)
                else:
                    out[key] = self.number(value, f"input.{key}")
        lo, hi = out.get("lower"), out.get("upper")
        if isinstance(lo, float) and isinstance(hi, float) and lo >= hi:
            raise self.fail("input", f"lower ({lo}) must be below upper ({hi})")
        # Per-feature lists are checked against the input's width when the spec is built.
        return out

    def constraints(self, value: Any) -> dict[str, Any]:
        cons = dict(self.mapping(value, "constraints"))
        self.known(cons, _CONSTRAINT_KEYS, "constraints.")
        for key in ("immutable", "integer"):
            if key in cons and (not isinstance(cons[key], list) or not all(self.is_feature(f) for f in cons[key])):
                raise self.fail(f"constraints.{key}", "must be a list of feature names or indices")
        if "categorical" in cons:
            for feature, values in self.mapping(cons["categorical"], "constraints.categorical").items():
                if (
                    not self.is_feature(feature)
                    or not isinstance(values, list)
                    or not values
                    or not all(self.is_number(v) for v in values)
                ):
                    raise self.fail(f"constraints.categorical.{feature}", "must be a non-empty list of numbers")
        if "ranges" in cons:
            for feature, bounds in self.mapping(cons["ranges"], "constraints.ranges").items():
                if (
                    not self.is_feature(feature)
                    or not isinstance(bounds, list)
                    or len(bounds) != 2
                    or not all(self.is_number(b) for b in bounds)
                    or bounds[0] > bounds[1]
                ):
                    raise self.fail(f"constraints.ranges.{feature}", "must be [low, high] with low <= high")
        return cons

    # -- values --------------------------------------------------------------------------
    def known(self, data: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(f"{prefix}{key}", f"unknown key (expected one of: {', '.join(allowed)})")

    def class_names(self, value: Any, n_classes: int | None) -> tuple[str, ...]:
        if (not isinstance(value, list) or len(value) < 2
                or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)):
            raise self.fail("class_names", "must be a list of at least two class names (strings), class 0 first")
        names = tuple(str(v) for v in value)
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise self.fail("class_names", f"names a class more than once: {', '.join(twice)}")
        if n_classes is not None and n_classes != len(names):
            raise self.fail("class_names", f"names {len(names)} classes but n_classes is {n_classes}")
        return names

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        return value

    def string(self, value: Any, key: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(key, f"must be a string, got {type(value).__name__}")
        return str(value)

    def key_path(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value or any(not part for part in value.split(".")):
            raise self.fail(key, f"must be a key or a dotted path such as result.scores, got {value!r}")
        return value

    def number(self, value: Any, key: str, minimum: float | None = None, strict: bool = True) -> float:
        if not self.is_number(value):
            raise self.fail(key, f"must be a number, got {type(value).__name__}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = float("inf")
        if number != number or abs(number) == float("inf"):  # YAML's .nan and .inf: a nan timeout fails every request
            raise self.fail(key, f"must be a finite number, got {number:g}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise self.fail(key, f"must be {'above' if strict else 'at least'} {minimum:g}, got {value}")
        return number

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {type(value).__name__}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def header_name(self, name: Any) -> str:
        name = str(name)
        if not _HEADER_NAME.match(name):
            raise self.fail(f"headers.{name!r}", "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)")
        return name

    def header_value(self, value: str, key: str) -> str:
        """``value`` when it can be sent in a header; a one-line error that never shows it."""
        bad = next((c for c in value if c in "\r\n\0" or (ord(c) < 32 and c != "\t") or ord(c) == 127), None)
        if bad is not None:
            hint = " (a token read from a file with Windows line endings?)" if bad == "\r" else ""
            raise self.fail(key, f"the value holds the control character {bad!r}{hint}, which cannot be sent in an "
                                 f"HTTP header; the value is not shown")
        return value

    def expand(self, text: str, key: str) -> str:
        """Replace ``${VAR}`` with the environment variable's value."""

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise self.fail(key, f"refers to ${{{name}}}, which is not set in the environment")
            return os.environ[name]

        return _ENV_REF.sub(lookup, text)

    @staticmethod
    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    @staticmethod
    def is_feature(value: Any) -> bool:
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
