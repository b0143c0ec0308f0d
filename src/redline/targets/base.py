"""The model under test behind one small interface, and the ledger every query goes through.

An adapter implements ``_predict`` (numpy in, probabilities or labels out) and, when it
has gradients, ``_torch_logits`` (a differentiable torch function). Everything a check
sends goes through :meth:`Target.predict` or :meth:`Target.logits`, which charge the
:class:`QueryLedger` before the model sees a row, so budgets hold and counts are exact.
What a check needs beyond answers (the torch module, the parameters, a raw transport) it
asks for through the capability hooks of :class:`Target`, each None when not offered.
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import threading
from typing import Any, Callable, Iterator, Literal, Protocol

import numpy as np

from ..errors import BudgetExceeded, TargetError

Outputs = Literal["probabilities", "labels"]


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a target lets an attacker (or auditor) do with it."""

    outputs: Outputs = "probabilities"
    gradients: bool = False
    trainable: bool = False
    remote: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FeatureConstraints:
    """What a real attacker can submit for tabular inputs (indices into the flat feature vector).

    ``immutable`` features keep their original value, ``integer`` ones are rounded,
    ``categorical`` ones snap to the nearest allowed value, ``ranges`` clip per feature.
    """

    immutable: tuple[int, ...] = ()
    integer: tuple[int, ...] = ()
    categorical: tuple[tuple[int, tuple[float, ...]], ...] = ()
    ranges: tuple[tuple[int, float, float], ...] = ()

    @classmethod
    def from_mapping(cls, m: dict[str, Any] | None, feature_names: list[str] | None = None) -> "FeatureConstraints":
        """Build from config data; features may be named (with ``feature_names``) or indexed."""
        if not m:
            return cls()

        def index(f: Any) -> int:
            if isinstance(f, int):
                return f
            if feature_names and f in feature_names:
                return feature_names.index(f)
            raise TargetError(f"feature constraint names unknown feature {f!r}")

        cats = m.get("categorical") or {}
        rngs = m.get("ranges") or {}
        return cls(
            immutable=tuple(sorted(index(f) for f in m.get("immutable") or ())),
            integer=tuple(sorted(index(f) for f in m.get("integer") or ())),
            categorical=tuple(sorted((index(f), tuple(float(v) for v in vals)) for f, vals in cats.items())),
            ranges=tuple(sorted((index(f), float(lo), float(hi)) for f, (lo, hi) in rngs.items())),
        )

    def __bool__(self) -> bool:
        return bool(self.immutable or self.integer or self.categorical or self.ranges)

    def project(self, x: np.ndarray, x_orig: np.ndarray) -> np.ndarray:
        """Map candidate inputs ``x`` (n, ...) onto the feasible set around ``x_orig``."""
        if not self:
            return x
        shape = x.shape
        flat = np.array(x, dtype=np.float64).reshape(shape[0], -1)
        orig = np.asarray(x_orig, dtype=np.float64).reshape(shape[0], -1)
        for i, lo, hi in self.ranges:
            flat[:, i] = np.clip(flat[:, i], lo, hi)
        if self.integer:
            idx = list(self.integer)
            flat[:, idx] = np.round(flat[:, idx])
        for i, values in self.categorical:
            allowed = np.asarray(values)
            flat[:, i] = allowed[np.abs(flat[:, i, None] - allowed[None, :]).argmin(axis=1)]
        if self.immutable:
            idx = list(self.immutable)
            flat[:, idx] = orig[:, idx]
        return flat.reshape(shape).astype(x.dtype, copy=False)

    def continuous(self) -> "FeatureConstraints":
        """The constraints a continuous attack iterate keeps (immutable features, ranges),
        without the rounding of integer and categorical features."""
        return dataclasses.replace(self, integer=(), categorical=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "immutable": list(self.immutable),
            "integer": list(self.integer),
            "categorical": {str(i): list(v) for i, v in self.categorical},
            "ranges": {str(i): [lo, hi] for i, lo, hi in self.ranges},
        }


def observed_feature_bounds(table: np.ndarray, lower: float, upper: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each column's (min, max) over ``table``; a column that never varies gets (lower, upper).

    A column constant in the sample (digits' corner pixels, a flag always off) has no observed
    range. It gets the table's shared one, which a sample with one more row could show, rather
    than a zero-width range that no config accepts and no perturbation can be measured in.
    """
    table = np.asarray(table, np.float64)
    lo, hi = table.min(axis=0), table.max(axis=0)
    constant = hi <= lo
    lo[constant], hi[constant] = lower, upper
    return tuple(float(v) for v in lo), tuple(float(v) for v in hi)


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """Shape of one input (without the batch axis), its dtype and valid range.

    ``lower``/``upper`` bound every feature (the shared pixel range of images, the envelope
    of all columns of a table). ``feature_lower``/``feature_upper`` (flat, one value per
    feature, or None) narrow that to each feature's own range: a table whose columns are in
    raw units (0.05 wide next to 4000 wide) needs them, or one number cannot describe a
    small change of every column. :meth:`feature_bounds` combines both with the
    ``ranges`` constraint.
    """

    shape: tuple[int, ...]
    dtype: str = "float32"
    lower: float = 0.0
    upper: float = 1.0
    constraints: FeatureConstraints = FeatureConstraints()
    feature_lower: tuple[float, ...] | None = None
    feature_upper: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("feature_lower", "feature_upper"):
            values = getattr(self, name)
            if values is not None and len(values) != self.n_features:
                raise TargetError(f"input spec: {name} has {len(values)} values for {self.n_features} features")

    @classmethod
    def from_data(cls, x: np.ndarray, constraints: FeatureConstraints | None = None) -> "InputSpec":
        """Infer the spec from example inputs: shape of a row, observed bounds (per column
        for tables, i.e. rows that are one flat vector of features)."""
        x = np.asarray(x)
        per_feature = x.ndim == 2 and len(x) > 0
        lower, upper = float(np.min(x)), float(np.max(x))
        if upper <= lower:  # every value alike: the data shows no range at all, assume a unit one
            upper = lower + 1.0
        feature_lower = feature_upper = None
        if per_feature:
            feature_lower, feature_upper = observed_feature_bounds(x, lower, upper)
        return cls(
            shape=tuple(int(s) for s in x.shape[1:]),
            dtype=str(x.dtype) if np.issubdtype(x.dtype, np.floating) else "float32",
            lower=lower,
            upper=upper,
            constraints=constraints or FeatureConstraints(),
            feature_lower=feature_lower,
            feature_upper=feature_upper,
        )

    @property
    def n_features(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def feature_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each a flat float64 array with one value per feature.

        A feature's own bounds when the spec has them, else the shared range; a ``ranges``
        constraint (stated by the user for that feature) replaces either.
        """
        d = self.n_features
        lo = np.full(d, float(self.lower)) if self.feature_lower is None else np.array(self.feature_lower, np.float64)
        hi = np.full(d, float(self.upper)) if self.feature_upper is None else np.array(self.feature_upper, np.float64)
        for i, r_lo, r_hi in self.constraints.ranges:
            lo[i], hi[i] = r_lo, r_hi
        return lo, hi

    @property
    def per_feature(self) -> bool:
        """True when features have ranges of their own (tables), False for one shared range."""
        return self.feature_lower is not None or self.feature_upper is not None or bool(self.constraints.ranges)

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lower, self.upper)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "lower": self.lower,
            "upper": self.upper,
            "constraints": self.constraints.to_dict() if self.constraints else None,
            **({"feature_lower": list(self.feature_lower)} if self.feature_lower is not None else {}),
            **({"feature_upper": list(self.feature_upper)} if self.feature_upper is not None else {}),
        }


class QueryLedger:
    """Counts the rows a target answers, split into attack and evaluation phases.

    The budget limits attack rows only: measuring a result (clean accuracy, fidelity)
    is the auditor's cost, not the attacker's, and is reported separately.

    Rows sent again because a request failed (a remote target's retries) are charged too,
    since the target received them: they count in ``attack``/``evaluation`` like any row,
    and also in ``retried``. They do not use up the budget, which is the attack's plan;
    a flaky transport must not turn a check into a budget error.
    """

    def __init__(self, budget: int | None = None, log: Callable[[str, int], None] | None = None):
        self.budget = budget
        self.log = log
        self.attack = 0
        self.evaluation = 0
        self.retried_attack = 0
        self.retried_evaluation = 0
        self._phase = "attack"
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return self.attack + self.evaluation

    @property
    def retried(self) -> int:
        """Rows charged for requests that got no usable answer (included in ``total``)."""
        return self.retried_attack + self.retried_evaluation

    @property
    def remaining(self) -> int | None:
        """Attack rows left, or None for no budget."""
        return None if self.budget is None else max(0, self.budget - (self.attack - self.retried_attack))

    @contextlib.contextmanager
    def evaluating(self) -> Iterator["QueryLedger"]:
        """Within this block, queries count as ``evaluation_queries`` and ignore the budget."""
        previous, self._phase = self._phase, "evaluation"
        try:
            yield self
        finally:
            self._phase = previous

    def reserve(self, rows: int) -> None:
        """Raise BudgetExceeded if ``rows`` more attack rows would pass the budget."""
        planned = self.attack - self.retried_attack
        if self._phase == "attack" and self.budget is not None and planned + rows > self.budget:
            raise BudgetExceeded(
                f"query budget exhausted: {planned} rows sent, {rows} more asked, budget {self.budget}"
            )

    def record(self, rows: int) -> None:
        """Count rows the target has answered."""
        with self._lock:
            if self._phase == "attack":
                self.attack += rows
            else:
                self.evaluation += rows
        if self.log is not None:
            self.log(self._phase, rows)

    def record_unanswered(self, rows: int) -> None:
        """Count rows the target received in a request that failed (it will be retried or
        the query fails): charged like answered rows, and listed as retried."""
        with self._lock:
            if self._phase == "attack":
                self.retried_attack += rows
            else:
                self.retried_evaluation += rows
        self.record(rows)


class RawTransport(Protocol):
    """What :meth:`Target.raw_transport` returns: a service's request channel, unchecked.

    ``send_raw`` posts a body exactly as given (one attempt, no retries) and charges
    ``rows`` to the target's ledger; ``request_object`` builds the JSON request carrying
    any inputs; ``find_prediction`` finds ``(outputs kind, value)`` in a decoded answer;
    ``config`` is the service's :class:`~redline.targets.config.TargetConfig`.
    """

    spec: str
    config: Any

    def send_raw(self, body: bytes, *, rows: int = 1, content_type: str = "application/json",
                 timeout: float | None = None, max_answer: int = 1 << 20) -> Any: ...

    def request_object(self, inputs: Any) -> dict[str, Any]: ...

    def find_prediction(self, answer: Any) -> tuple[str, Any] | None: ...


class Target(abc.ABC):
    """A classifier under test. Subclasses set the attributes below and implement ``_predict``.

    Attributes:
        spec: how the user named the target (``zoo:mnist_cnn``, a URL, ``python:object``).
        capabilities: what the target exposes (probabilities or labels, gradients...).
        input_spec: shape, dtype and bounds of one input.
        n_classes: number of classes.
        trainer: ``trainer(x, y, seed) -> Target`` rebuilding the model with its own recipe
            on other data, or None. Membership and poisoning checks need it.
        label_mismatch: why the data's labels cannot be this model's class indices, when
            loading found it (labels 1..k for classes 0..k-1), else None; every check that
            reads labels then ends with it as a data error.
    """

    spec: str = "target"
    capabilities: Capabilities = Capabilities()
    input_spec: InputSpec
    n_classes: int
    trainer: Callable[[np.ndarray, np.ndarray, int], "Target"] | None = None
    max_batch: int = 1024
    label_mismatch: str | None = None

    def __init__(self) -> None:
        self.ledger = QueryLedger()

    # -- adapter hooks -------------------------------------------------------------
    @abc.abstractmethod
    def _predict(self, x: np.ndarray) -> np.ndarray:
        """Return probabilities (n, n_classes) or labels (n,) for a batch already validated."""

    def _torch_logits(self, x: Any) -> Any:  # pragma: no cover - overridden by white-box adapters
        raise TargetError(f"{self.spec} does not expose gradients")

    # -- what checks call ----------------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Query the model: probabilities (n, k) if ``capabilities.outputs`` says so, else labels (n,)."""
        x = self._validate(x)
        n = len(x)
        self.ledger.reserve(n)
        parts = []
        for start in range(0, n, self.max_batch):
            chunk = x[start : start + self.max_batch]
            out = np.asarray(self._predict(chunk))
            self.ledger.record(len(chunk))
            parts.append(out)
        if not parts:
            k = self.n_classes
            return np.zeros((0, k)) if self.capabilities.outputs == "probabilities" else np.zeros(0, dtype=int)
        return np.concatenate(parts, axis=0)

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        out = self.predict(x)
        return out.argmax(axis=1) if out.ndim == 2 else out.astype(int)

    def predict_raw(self, x: Any) -> Any:
        """Hand ``x`` to the model exactly as given and return whatever it answers.

        No shape, dtype or output checks and no chunking: input fuzzing sends malformed
        inputs through here on purpose (every other query goes through :meth:`predict`).
        The call is charged before the model sees it, as ``len(x)`` rows and at least one
        (an empty batch or a scalar still reaches the model), whether or not it answers.
        """
        rows = raw_rows(x)
        self.ledger.reserve(rows)
        self.ledger.record(rows)
        return self._predict_raw(x)

    def _predict_raw(self, x: Any) -> Any:
        """The model's own answer to an unchecked ``x``; adapters whose ``_predict`` converts
        or checks what the model answers override this to skip those steps."""
        return self._predict(x)

    def logits(self, x: Any) -> Any:
        """Differentiable logits for a torch tensor batch (white-box targets only); counted."""
        if not self.capabilities.gradients:
            raise TargetError(f"{self.spec} does not expose gradients")
        n = int(x.shape[0])
        self.ledger.reserve(n)
        out = self._torch_logits(x)
        self.ledger.record(n)
        return out

    def retrain(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> "Target":
        """A fresh model from the target's own recipe, trained on (x, y)."""
        if self.trainer is None:
            raise TargetError(f"{self.spec} has no training recipe")
        return self.trainer(x, y, seed)

    # -- capability hooks: what a check may ask of the model beyond its answers --------
    # Each returns None when the target cannot offer it, and the base class offers none.
    # An adapter overrides the ones its model supports. A wrapper that changes answers (a
    # hardening or defence) keeps the defaults, so no check reaches past it to the model,
    # and says what it wraps through ``wrapped``.
    def torch_module(self) -> Any:
        """The ``torch.nn.Module`` this target runs, for checks that inspect or hook its
        layers (activations, gradient masking), or None.

        Only the model's own module: a torch mirror built just to give gradients (of a
        scikit-learn model, of an ONNX graph converted op by op) has no layers of the
        model's and is not returned. Send inputs through :meth:`logits`, not the module,
        so the ledger counts them.
        """
        return None

    def parameter_arrays(self) -> list[np.ndarray] | None:
        """The model's float parameters, each flattened and in its own dtype, in model
        order; None when the target does not show them (a service, a function, a wrapper)."""
        return None

    def sklearn_estimator(self) -> Any:
        """The fitted scikit-learn estimator behind the target, or None. Checks read it
        only to compare what an attack recovered with the truth, or to name the model's
        kind where a statistic holds for some kinds only (FM08.capacity_abuse)."""
        return None

    def raw_transport(self) -> "RawTransport | None":
        """The service's own request channel, for sending malformed requests on purpose
        (input fuzzing), or None when the target is not a remote service."""
        return None

    def wrapped(self) -> "Target | None":
        """The target this one wraps and whose answers it changes, or None."""
        return None

    def close(self) -> None:
        """Release sessions or connections."""

    def needs_discovery(self) -> bool:
        """True while the target's capabilities are only known after a first answer
        (a remote API that may return probabilities or labels)."""
        return False

    # -- helpers -------------------------------------------------------------------
    def _validate(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == len(self.input_spec.shape):
            raise TargetError(f"expected a batch of inputs shaped (n, {self.input_spec.shape}), got {x.shape}")
        if tuple(x.shape[1:]) != tuple(self.input_spec.shape):
            raise TargetError(f"inputs have shape {tuple(x.shape[1:])}, the target expects {self.input_spec.shape}")
        return x.astype(self.input_spec.dtype, copy=False)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "capabilities": self.capabilities.to_dict(), "n_classes": self.n_classes}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} {self.capabilities}>"


def raw_rows(x: Any) -> int:
    """Rows an unchecked input is charged as: its length, at least 1 (scalars count 1)."""
    try:
        return max(1, len(x))
    except TypeError:  # a 0-d array or a plain scalar has no length
        return 1

