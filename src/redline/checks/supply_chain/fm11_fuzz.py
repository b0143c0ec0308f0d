"""FM11 input fuzzing: malformed and extreme inputs against the code that serves a model.

The check sends one valid row first (the *baseline*, an evaluation query: a target that
cannot answer it is broken, not fuzzed), then a fixed catalogue of cases, one request or
call each, and judges every answer. Case kinds: ``nan``, ``inf``, ``neg_inf``, ``huge``
(1e38, 1e308), ``tiny`` (subnormal floats), ``out_of_bounds`` (far outside the input
spec's bounds), ``wrong_shape``, ``wrong_dtype``, ``empty_batch`` and ``oversized_batch``
for every target, and for HTTP targets also ``malformed_json``, ``wrong_content_type``,
``oversized_body`` and ``missing_field``.

Outcomes of one case:

``ok``
    a valid but extreme input (subnormals within bounds, an empty or an oversized batch,
    NaN where it means a missing value) answered with a well-formed prediction: one finite
    row per input row.
``rejected``
    refused cleanly, which is what a robust target does with invalid input: an HTTP 4xx,
    a 2xx that holds no prediction, or a server closing the connection while the request
    is still being sent (how servers commonly refuse oversized bodies). In memory: the
    model raised :class:`~redline.errors.TargetError`, :class:`ValueError` or
    :class:`TypeError` (subclasses included), the exceptions Python, numpy, scikit-learn
    and redline's adapters raise for an input of the wrong value or type.
``accepted_invalid``
    invalid input (NaN, infinities, out of bounds, wrong shape or type, a malformed
    request) answered with a prediction: a 2xx whose JSON holds a non-empty value under
    the prediction key, or in memory a non-empty return value. The answer means nothing.
``bad_answer``
    a valid input answered with something that is not a well-formed prediction.
``server_error``
    an HTTP 5xx answer.
``crash``
    in memory, any other exception (ZeroDivisionError, IndexError, KeyError, RuntimeError,
    MemoryError, SystemExit...); over HTTP, a connection dropped without an answer. A crash that kills
    the interpreter (a segfault in native code) is out of scope: in memory it takes redline
    down too.
``hang``
    no complete answer within ``timeout`` seconds. Every case runs in a daemon thread that
    is waited for at most that long; a hung in-memory call cannot be stopped and keeps
    running in the background, a hung request ends at the socket timeout.

The target is vulnerable when any case crashed, hung, got a server error, a bad answer,
or had invalid input accepted.

NaN as a missing value: some models take NaN as "this feature is missing" by design
(scikit-learn's HistGradientBoosting estimators, a Pipeline that starts with an imputer), so
answering it is their contract, not a silently accepted invalid input. ``nan_inputs``
decides: ``invalid`` judges NaN cases as invalid input (answered: ``accepted_invalid``);
``missing`` judges them as valid input (a well-formed answer is ``ok``, a malformed one
``bad_answer``, refusals and exceptions as for any case); ``auto`` (the default) reads the
scikit-learn tags of the estimator the target exposes (``Target.sklearn_estimator()``:
``sklearn.utils.get_tags(est).input_tags.allow_nan`` from scikit-learn 1.6 on, the
``allow_nan`` of ``est._get_tags()`` before; for a Pipeline its steps in order, until an
imputer fills NaN in or a step refuses it: a scaler lets NaN through, so a scaler before a
logistic regression does not take it) and treats NaN as missing when they allow NaN, and as invalid
otherwise and whenever the target exposes no scikit-learn estimator (an HTTP endpoint, a
function, ONNX or torch, a wrapper). Infinities are invalid either way. The ``nan_inputs``
metric says how NaN was judged (``missing`` or ``invalid``) and the ``nan_inputs`` evidence
why; both are reported when NaN cases were sent.

Query counting: a request or call counts as the rows it carried, and at least 1, because
the target received it even when it carried no countable rows. Over HTTP the rows of a
request are the length of the JSON list under the inputs key when the body is a JSON
object holding such a list, and 1 otherwise (malformed JSON, a bare array, form data, a
scalar); in memory they are ``len(x)`` of the array handed over, and 1 for a scalar. Every
case is charged before it is sent, answered or not; the baseline is an evaluation query,
the cases are attack queries. So ``queries + evaluation_queries`` is what a server that
counts its requests by this rule received. The budget must cover every kind's first case
(else the check does not apply); further cases are added, kind by kind, while it lasts.

Severity: FM11 is rated by the traditional bug bar, through the ``max_cvss`` metric the
triage rules read. Each failing case is scored with a CVSS v3.1 base vector describing
what it showed, for a network-reachable endpoint without authentication (the deployment
context adjusts that later): a hang or a dropped connection denies service (A:H, 7.5);
a server error or an in-memory crash fails the one request (A:L, 5.3), and a server error
whose answer shows a Python traceback also discloses internals (C:L/A:L, 6.5); a bad
answer to valid input is a low integrity loss (I:L, 5.3); silently accepted invalid input
matters only when something downstream trusts the meaningless answer (AC:H/I:L, 3.7).

The cases are a fixed catalogue with feature positions drawn from the check's seed, not
hypothesis strategies: hypothesis can draw reproducibly only inside its test runner
(``@given`` with ``@seed``) or through internal APIs, ``.example()`` is neither seeded nor
meant for use outside a console, its strength (shrinking) costs many extra target queries
that the budget cannot spare, and it is a test-only dependency. The edge values that break
serving code are few and well known, so listing them gives the same coverage, exactly
reproducible. The tests use hypothesis where it fits: properties of the catalogue.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import BudgetExceeded, TargetError, UsageError
from ...targets.base import raw_rows
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome

COMMON_KINDS = (
    "nan",
    "inf",
    "neg_inf",
    "huge",
    "tiny",
    "out_of_bounds",
    "wrong_shape",
    "wrong_dtype",
    "empty_batch",
    "oversized_batch",
)
HTTP_KINDS = ("malformed_json", "wrong_content_type", "oversized_body", "missing_field")
KINDS = COMMON_KINDS + HTTP_KINDS
# An in-memory model is called by the application's own code, which fixes the array's shape
# and dtype; a framework exception on a mis-shaped array is a rejection, not a service
# crash. Those kinds run for in-memory targets only when asked for with ``include``.
MEMORY_DEFAULT_KINDS = tuple(k for k in COMMON_KINDS if k not in ("wrong_shape", "wrong_dtype"))

# Most values one oversized batch holds (16 MB as float32, about 80 MB as JSON).
OVERSIZED_BATCH_VALUES = 4_000_000

NAN_INPUTS = ("auto", "invalid", "missing")
FAILURES = ("crash", "server_error", "hang", "bad_answer", "accepted_invalid")
OUTCOMES = ("ok", "rejected") + FAILURES
# Metric name of each outcome's count.
_METRIC = {
    "ok": "ok",
    "rejected": "rejected",
    "crash": "crashes",
    "server_error": "server_errors",
    "hang": "hangs",
    "bad_answer": "bad_answers",
    "accepted_invalid": "accepted_invalid",
}
_PLURAL = {
    "crash": ("crash", "crashes"),
    "server_error": ("server error", "server errors"),
    "hang": ("hang", "hangs"),
    "bad_answer": ("bad answer to valid input", "bad answers to valid input"),
    "accepted_invalid": ("invalid input silently accepted", "invalid inputs silently accepted"),
}

_NETWORK = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U"
_VECTORS = {
    "denial": f"{_NETWORK}/C:N/I:N/A:H",
    "failed_request": f"{_NETWORK}/C:N/I:N/A:L",
    "traceback": f"{_NETWORK}/C:L/I:N/A:L",
    "bad_answer": f"{_NETWORK}/C:N/I:L/A:N",
    "accepted_invalid": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:N",
}
_TRACEBACK_MARK = b"Traceback (most recent call last)"
_MAX_LISTED = 50  # failing cases listed in the finding; the artifact has them all
_DEEP_NESTING = 50_000


@dataclasses.dataclass
class FuzzCase:
    """One malformed or extreme input and how to send it.

    ``inputs`` is the JSON value placed under the request's inputs key; ``array`` is what
    an in-memory target receives; ``body`` replaces the whole HTTP request when set.
    ``valid`` says whether a correct target may answer with a prediction; ``expected_rows``
    is how many prediction rows a valid case must get back.
    """

    kind: str
    description: str
    valid: bool = False
    inputs: Any = None
    array: Any = None
    body: bytes | None = None
    content_type: str = "application/json"
    rows: int = 1
    expected_rows: int = 0
    http_only: bool = False


@dataclasses.dataclass
class CaseResult:
    """How a target answered one case."""

    kind: str
    case: str
    outcome: str
    rows: int
    seconds: float
    status: int | None = None
    error: str = ""
    answer: str = ""
    leaks_traceback: bool = False

    @property
    def failed(self) -> bool:
        return self.outcome in FAILURES

    def cvss_vector(self, remote: bool) -> str | None:
        if self.outcome == "hang" or (self.outcome == "crash" and remote):
            return _VECTORS["denial"]
        if self.outcome == "server_error":
            return _VECTORS["traceback" if self.leaks_traceback else "failed_request"]
        if self.outcome == "crash":
            return _VECTORS["failed_request"]
        if self.outcome in ("bad_answer", "accepted_invalid"):
            return _VECTORS[self.outcome]
        return None

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        return {k: v for k, v in record.items() if not (v is None or v == "" or v is False)}


class InputFuzzing(Check):
    """Send malformed and extreme inputs; flag crashes, 5xx, hangs and accepted invalid input.

    Parameters:
        cases_per_kind: at most this many cases of each kind (None: the whole catalogue).
        timeout: seconds one case may take before it counts as a hang (at most 600).
        oversized_rows: rows in the oversized batch (all copies of the valid baseline row).
        oversized_body_mb: size of the oversized HTTP body, in megabytes.
        include: the kinds to send (names or a comma-separated string); None: every kind
            that fits the target (the HTTP-only kinds need an HTTP target).
        nan_inputs: how NaN inputs are judged: ``invalid`` (answering them is accepting
            invalid input), ``missing`` (NaN is a missing value, a valid input) or ``auto``
            (``missing`` when the scikit-learn tags of the target's estimator allow NaN,
            else ``invalid``).
    """

    id = "FM11.fuzz"
    mode = "FM11"
    title = "Input fuzzing: crashes, server errors, hangs and silently accepted invalid input"
    needs = Needs(roles=(), labels=False)  # data, when given, only supplies a valid row
    default_budget = 10_000
    metrics = (
        "accepted_invalid", "bad_answers", "cases", "crashes", "failures", "hangs", "max_cvss", "nan_inputs", "ok",
        "rejected", "server_errors"
    )
    param_docs = {
        "cases_per_kind": "most cases of each kind (null: the whole catalogue)",
        "timeout": "seconds one case may take before it counts as a hang (at most 600)",
        "oversized_rows": "rows in the oversized batch",
        "oversized_body_mb": "size of the oversized HTTP body in megabytes (at most 64)",
        "include": "kinds to send, as names or a comma-separated string (null: every kind that fits the target)",
        "nan_inputs": (
            "how NaN inputs are judged: invalid (an answer is accepted invalid input), missing (NaN is a missing "
            "value: a valid input that must get a well-formed answer) or auto (missing when the scikit-learn tags "
            "of the target's estimator say allow_nan, else invalid)"
        ),
    }

    def __init__(
        self,
        cases_per_kind: int | None = None,
        timeout: float = 10.0,
        oversized_rows: int = 1024,
        oversized_body_mb: float = 4.0,
        include: str | tuple[str, ...] | list[str] | None = None,
        nan_inputs: str = "auto",
    ):
        self.cases_per_kind = cases_per_kind
        self.timeout = timeout
        self.oversized_rows = oversized_rows
        self.oversized_body_mb = oversized_body_mb
        self.include = include
        self.nan_inputs = nan_inputs

    def applicability(self, target, data) -> str | None:
        # Any target with an input spec, any data or none: data only supplies a valid row.
        return None

    # -- the procedure -----------------------------------------------------------------
    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        http = _raw_transport(target)
        kinds = self._kinds(http is not None)
        base = _base_row(target.input_spec, data, rng)
        nan_missing, nan_why = nan_meaning(self.nan_inputs, target) if "nan" in kinds else (False, "")
        catalogue = CaseCatalogue(
            target.input_spec,
            base,
            rng,
            oversized_rows=int(self.oversized_rows),
            body_bytes=int(self.oversized_body_mb * 1_000_000),
            http=http,
            nan_valid=nan_missing,
        )
        by_kind: dict[str, list[FuzzCase]] = {}
        skipped: dict[str, str] = {}
        for kind in kinds:
            cases = catalogue.build(kind)
            if not cases:
                skipped[kind] = catalogue.why_empty(kind)
                continue
            by_kind[kind] = cases if self.cases_per_kind is None else cases[: int(self.cases_per_kind)]
        if not by_kind:
            reasons = "; ".join(f"{kind}: {why}" for kind, why in skipped.items())
            raise NotApplicable(f"no fuzzing case fits this target ({reasons})")
        plan = plan_cases(by_kind, budget)

        timeout = float(self.timeout)
        send = _HttpSender(http, timeout) if http is not None else _MemorySender(target, timeout)
        with target.ledger.evaluating():
            baseline = send(catalogue.baseline())
        if baseline.outcome != "ok":
            detail = baseline.error or baseline.answer or (f"HTTP {baseline.status}" if baseline.status else "")
            raise TargetError(
                f"{target.spec}: the target did not answer one valid row ({baseline.outcome}"
                f"{': ' + detail if detail else ''}), so its answers to malformed input would mean nothing"
            )

        results: list[CaseResult] = []
        for i, case in enumerate(plan):
            results.append(send(case))
            ctx.progress(i + 1, len(plan))
        nan = ("missing" if nan_missing else "invalid", nan_why) if "nan" in by_kind else None
        return self._outcome(results, skipped, http is not None, ctx, nan)

    def _outcome(
        self,
        results: list[CaseResult],
        skipped: dict[str, str],
        remote: bool,
        ctx: CheckContext,
        nan: tuple[str, str] | None = None,
    ) -> Outcome:
        counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in OUTCOMES}
        failed = [r for r in results if r.failed]
        metrics: dict[str, Any] = {"cases": len(results)}
        metrics.update({_METRIC[o]: counts[o] for o in OUTCOMES})
        metrics["failures"] = len(failed)
        evidence: dict[str, Any] = {}
        if nan is not None:  # how NaN was judged, and why
            metrics["nan_inputs"], evidence["nan_inputs"] = nan
        worst = None
        if failed:
            from ...util.cvss import base_score

            # The first case with the highest score stands for the finding.
            scored = [(base_score(r.cvss_vector(remote)), -i, r) for i, r in enumerate(failed)]
            score, _, worst = max(scored, key=lambda item: item[:2])
            metrics["max_cvss"], evidence["cvss_vector"] = score, worst.cvss_vector(remote)
            evidence["failures"] = [r.to_dict() for r in failed[:_MAX_LISTED]]
            if len(failed) > _MAX_LISTED:
                evidence["failures_not_listed"] = len(failed) - _MAX_LISTED
        if skipped:
            evidence["skipped_kinds"] = skipped
        path, rel = ctx.artifact(f"{self.id}-cases.json")
        if path is not None:
            record = {"check": self.id, "timeout": float(self.timeout), "cases": [r.to_dict() for r in results]}
            from ...util.atomic import writing_output

            with writing_output(path, remove_partial=True):  # a full disk stops the scan (OutputError)
                path.write_text(json.dumps(record, indent=2), encoding="utf-8")
            evidence["cases"] = rel
        summary = _summary(results, counts, worst)
        if nan is not None and nan[0] == "missing":
            summary += f" NaN was sent as a missing value, a valid input ({nan[1]})."
        return Outcome(vulnerable=bool(failed), metrics=metrics, evidence=evidence, summary=summary)

    # -- parameters ----------------------------------------------------------------------
    def _validate(self) -> None:
        if self.cases_per_kind is not None and (not _is_int(self.cases_per_kind) or self.cases_per_kind < 1):
            raise UsageError(
                f"{self.id}: cases_per_kind must be a positive integer or None, not {self.cases_per_kind!r}"
            )
        if not _is_number(self.timeout) or not 0 < self.timeout <= 600:
            raise UsageError(f"{self.id}: timeout must be a number of seconds in (0, 600], not {self.timeout!r}")
        if not _is_int(self.oversized_rows) or self.oversized_rows < 2:
            raise UsageError(f"{self.id}: oversized_rows must be an integer of at least 2, not {self.oversized_rows!r}")
        if not _is_number(self.oversized_body_mb) or not 0 < self.oversized_body_mb <= 64:
            raise UsageError(f"{self.id}: oversized_body_mb must be in (0, 64], not {self.oversized_body_mb!r}")
        if not isinstance(self.nan_inputs, str) or self.nan_inputs not in NAN_INPUTS:
            raise UsageError(f"{self.id}: nan_inputs must be one of {', '.join(NAN_INPUTS)}, not {self.nan_inputs!r}")
        self._kinds(http=True)  # unknown names in include (which kinds fit the target is decided in run)

    def _kinds(self, http: bool) -> list[str]:
        available = KINDS if http else COMMON_KINDS
        if self.include is None:
            return list(KINDS if http else MEMORY_DEFAULT_KINDS)
        names = self.include.split(",") if isinstance(self.include, str) else list(self.include)
        chosen = [str(n).strip() for n in names if str(n).strip()]
        unknown = [n for n in chosen if n not in KINDS]
        if unknown or not chosen:
            problem = f"names unknown kinds {unknown!r}" if unknown else "names no kind"
            raise UsageError(f"{self.id}: include {problem} (known: {', '.join(KINDS)})")
        usable = [k for k in KINDS if k in chosen and k in available]
        if not usable:
            raise NotApplicable(f"the kinds chosen ({', '.join(chosen)}) apply to HTTP targets only")
        return usable


# -- the case catalogue ---------------------------------------------------------------------


class CaseCatalogue:
    """Builds the cases of each kind around one valid row, for an HTTP or in-memory target."""

    def __init__(
        self,
        spec,
        base: np.ndarray,
        rng: np.random.Generator,
        *,
        oversized_rows: int,
        body_bytes: int,
        http=None,
        nan_valid: bool = False,
    ):
        self.spec = spec
        self.shape = tuple(spec.shape)
        self.base = np.asarray(base, dtype=np.float64).reshape(self.shape)
        self.flat = self.base.ravel()
        self.d = self.flat.size
        self.rng = rng
        self.oversized_rows = oversized_rows
        self.body_bytes = body_bytes
        self.http = http
        self.nan_valid = nan_valid  # NaN is a missing value, a valid input (nan_inputs)

    # -- entry points --------------------------------------------------------------------
    def build(self, kind: str) -> list[FuzzCase]:
        """The cases of ``kind`` that apply to this target, each with its cost in rows."""
        cases = [c for c in getattr(self, f"_{kind}")() if not (c.http_only and self.http is None)]
        for case in cases:
            self._finish(case)
        return cases

    def why_empty(self, kind: str) -> str:
        if kind == "out_of_bounds":
            return "the input spec has no finite bounds to step outside"
        return "no case of this kind fits the target"

    def baseline(self) -> FuzzCase:
        case = FuzzCase("baseline", "one valid row", valid=True, inputs=[self._row(self.flat)], expected_rows=1)
        case.array = self.base[None].astype(self.spec.dtype)
        self._finish(case)
        return case

    def _finish(self, case: FuzzCase) -> None:
        """Fill in what each transport sends and what the case costs."""
        if self.http is not None:
            if case.body is None:
                case.body = _json_bytes(self.http.request_object(case.inputs))
                case.rows = max(1, len(case.inputs)) if isinstance(case.inputs, list) else 1
        else:
            if case.array is None:
                case.array = _as_array(case.inputs)
            case.rows = raw_rows(case.array)

    # -- helpers -------------------------------------------------------------------------
    def _row(self, flat) -> Any:
        """A flat sequence (numbers or any JSON values) as one nested row of the input shape."""
        return np.array(list(flat), dtype=object).reshape(self.shape).tolist()

    def _feature(self) -> int:
        return int(self.rng.integers(self.d))

    def _value_case(self, kind: str, label: str, value: float, where: str) -> FuzzCase:
        """``value`` in one random feature, every feature, or one feature of a second row."""
        bad = self.flat.copy()
        if where == "all":
            bad[:] = value
            description, rows = f"{label} in every feature", [bad]
        else:
            i = self._feature()
            bad[i] = value
            if where == "one":
                description, rows = f"{label} in feature {i}", [bad]
            else:
                description, rows = f"{label} in feature {i} of the second row of two", [self.flat, bad]
        array = np.stack(rows).reshape(len(rows), *self.shape)
        lo, hi = self.spec.lower, self.spec.upper
        valid = (math.isfinite(value) and lo <= value <= hi) or (math.isnan(value) and self.nan_valid)
        return FuzzCase(kind, description, valid=valid, inputs=array.tolist(), array=array, expected_rows=len(rows))

    # -- kinds ---------------------------------------------------------------------------
    def _nan(self) -> list[FuzzCase]:
        nan = float("nan")
        return [self._value_case("nan", "NaN", nan, where) for where in ("one", "all", "second")]

    def _inf(self) -> list[FuzzCase]:
        return [self._value_case("inf", "+Infinity", math.inf, where) for where in ("one", "all", "second")]

    def _neg_inf(self) -> list[FuzzCase]:
        return [self._value_case("neg_inf", "-Infinity", -math.inf, where) for where in ("one", "all", "second")]

    def _huge(self) -> list[FuzzCase]:
        return [
            self._value_case("huge", "1e38", 1e38, "one"),
            self._value_case("huge", "1e308 (near the float64 maximum)", 1e308, "one"),
            self._value_case("huge", "-1e308", -1e308, "all"),
            self._value_case("huge", "3.4e38 (near the float32 maximum)", 3.4e38, "all"),
        ]

    def _tiny(self) -> list[FuzzCase]:
        return [
            self._value_case("tiny", "5e-324 (the smallest float64 subnormal)", 5e-324, "one"),
            self._value_case("tiny", "1e-45 (a float32 subnormal)", 1e-45, "all"),
            self._value_case("tiny", "1e-310 (a float64 subnormal)", 1e-310, "second"),
        ]

    def _out_of_bounds(self) -> list[FuzzCase]:
        lo, hi = self.spec.lower, self.spec.upper
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return []
        span = (hi - lo) or 1.0
        above, below = hi + 1000 * span, lo - 1000 * span
        return [
            self._value_case("out_of_bounds", f"{above:g} (far above the upper bound {hi:g})", above, "one"),
            self._value_case("out_of_bounds", f"{below:g} (far below the lower bound {lo:g})", below, "one"),
            self._value_case("out_of_bounds", f"{above:g} (far above the upper bound {hi:g})", above, "all"),
        ]

    def _wrong_shape(self) -> list[FuzzCase]:
        base, flat = self.base, self.flat
        missing = base[..., :-1][None]
        extra = np.concatenate([base, base[..., -1:]], axis=-1)[None]
        # A (d, n) transpose must not happen to have a valid shape itself.
        n = 3 if self.shape == (2,) else 2
        transposed = np.tile(flat, (n, 1)).T
        ragged = [flat.tolist(), flat[:-1].tolist()]
        ragged_array = np.empty(2, dtype=object)
        ragged_array[0], ragged_array[1] = ragged
        scalar = float(flat[0])
        cases = [
            FuzzCase("wrong_shape", "one row with its last feature missing", inputs=missing.tolist(), array=missing),
            FuzzCase("wrong_shape", "one row with an extra feature", inputs=extra.tolist(), array=extra),
            FuzzCase(
                "wrong_shape",
                f"a {n}-row batch transposed (features as rows)",
                inputs=transposed.tolist(),
                array=transposed,
            ),
            FuzzCase("wrong_shape", "one row without the batch axis", inputs=base.tolist(), array=base.copy()),
            FuzzCase("wrong_shape", "a single number instead of a batch", inputs=scalar, array=np.asarray(scalar)),
            FuzzCase("wrong_shape", "two flat rows of different lengths", inputs=ragged, array=ragged_array),
            FuzzCase("wrong_shape", "one row with no features", inputs=[[]], array=np.zeros((1, 0))),
        ]
        if self.http is not None:  # only JSON can nest this deep; parsers that recurse overflow
            deep = "[" * _DEEP_NESTING + "0.5" + "]" * _DEEP_NESTING
            description = f"the inputs nested {_DEEP_NESTING:,} arrays deep"
            cases.append(FuzzCase("wrong_shape", description, body=self._with_inputs_text(deep), http_only=True))
        return cases

    def _wrong_dtype(self) -> list[FuzzCase]:
        values = self.flat.tolist()

        def replaced(new: Any) -> list[Any]:
            row = list(values)
            row[self._feature()] = new
            return [self._row(row)]

        as_text = [self._row(str(v) for v in values)]
        with_null, with_object = replaced(None), replaced({"value": values[0]})
        with_string = replaced("abc")
        text = "not a batch"
        return [
            FuzzCase("wrong_dtype", "a string in one feature", inputs=with_string, array=np.array(with_string, str)),
            FuzzCase("wrong_dtype", "every number sent as a string", inputs=as_text, array=np.array(as_text, str)),
            FuzzCase("wrong_dtype", "null in one feature", inputs=with_null, array=np.array(with_null, object)),
            FuzzCase("wrong_dtype", "an object in one feature", inputs=with_object, array=_object_array(with_object)),
            # numpy treats booleans as numbers, JSON does not: a type error only on the wire.
            FuzzCase("wrong_dtype", "booleans instead of numbers", inputs=[self._row([True] * self.d)], http_only=True),
            FuzzCase("wrong_dtype", "a string instead of the batch", inputs=text, array=np.asarray(text)),
        ]

    def _empty_batch(self) -> list[FuzzCase]:
        empty = np.zeros((0, *self.shape), dtype=self.spec.dtype)
        return [FuzzCase("empty_batch", "a batch of no rows", valid=True, inputs=[], array=empty, expected_rows=0)]

    def _oversized_batch(self) -> list[FuzzCase]:
        # Capped by size: 1,024 rows of 3x224x224 images are 600 MB as floats and about 3 GB
        # as JSON, which would hurt the machine running the check before the target.
        per_row = max(1, int(np.prod(self.shape)))
        n = max(2, min(self.oversized_rows, OVERSIZED_BATCH_VALUES // per_row))
        row = self.base.tolist()
        array = np.repeat(self.base[None].astype(self.spec.dtype), n, axis=0)
        description = f"{n:,} valid rows in one batch" + (
            f" (oversized_rows {self.oversized_rows:,} capped at {OVERSIZED_BATCH_VALUES:,} values)"
            if n < self.oversized_rows else "")
        return [FuzzCase("oversized_batch", description, valid=True, inputs=[row] * n, array=array, expected_rows=n)]

    def _malformed_json(self) -> list[FuzzCase]:
        good = self._good_body()
        key = self._inputs_key_leaf()
        return [
            FuzzCase("malformed_json", "the request cut off halfway", body=good[: len(good) // 2]),
            FuzzCase("malformed_json", "plain text instead of JSON", body=b"this is not JSON"),
            FuzzCase("malformed_json", "bytes that are not UTF-8", body=b'{"' + key.encode() + b'": [[\xff\xfe\xfd]]}'),
            FuzzCase("malformed_json", "an empty body", body=b""),
            FuzzCase("malformed_json", "valid JSON followed by garbage", body=good + b" }}garbage"),
        ]

    def _wrong_content_type(self) -> list[FuzzCase]:
        good = self._good_body()
        form = urllib.parse.urlencode({self._inputs_key_leaf(): json.dumps([self._row(self.flat)])}).encode()
        return [
            # Browsers send text/plain across origins without a preflight: accepting JSON
            # under it lets any web page submit requests on a visitor's behalf.
            FuzzCase("wrong_content_type", "valid JSON sent as text/plain", body=good, content_type="text/plain"),
            FuzzCase(
                "wrong_content_type",
                "the batch sent as an HTML form",
                body=form,
                content_type="application/x-www-form-urlencoded",
            ),
        ]

    def _oversized_body(self) -> list[FuzzCase]:
        fill = float(self.flat[0])
        per_value = len(json.dumps(fill)) + 2  # the value and json's ", " separator
        n = max(self.d + 1, self.body_bytes // per_value)
        body = _json_bytes(self.http.request_object([[fill] * n]))
        description = f"one row padded to {n:,} features ({len(body) / 1e6:.1f} MB)"
        return [FuzzCase("oversized_body", description, body=body)]

    def _missing_field(self) -> list[FuzzCase]:
        unknown = f"{self._inputs_key_leaf()}_unknown"
        renamed = json.loads(json.dumps(dict(self.http.config.request_fields)))
        batch = [self._row(self.flat)]
        renamed[unknown] = batch
        return [
            FuzzCase("missing_field", "an empty JSON object", body=b"{}"),
            FuzzCase("missing_field", f"the batch under the unknown key {unknown!r}", body=_json_bytes(renamed)),
            FuzzCase("missing_field", "a bare JSON array, no object around it", body=_json_bytes(batch)),
            FuzzCase("missing_field", "JSON null", body=b"null"),
        ]

    # -- HTTP bodies ---------------------------------------------------------------------
    def _good_body(self) -> bytes:
        return _json_bytes(self.http.request_object([self._row(self.flat)]))

    def _inputs_key_leaf(self) -> str:
        return self.http.config.inputs_key.split(".")[-1]

    def _with_inputs_text(self, text: str) -> bytes:
        """A request whose inputs value is ``text``, spliced in as raw JSON (too deep for json.dumps)."""
        marker = "__redline_inputs__"
        return _json_bytes(self.http.request_object(marker)).replace(json.dumps(marker).encode(), text.encode())


def nan_meaning(setting: str, target) -> tuple[bool, str]:
    """(whether NaN inputs are missing values, i.e. valid input, and why) for ``nan_inputs``."""
    if setting == "missing":
        return True, "nan_inputs=missing"
    if setting == "invalid":
        return False, "nan_inputs=invalid"
    estimator = target.sklearn_estimator()
    if estimator is None:
        return False, "nan_inputs=auto and the target exposes no scikit-learn estimator whose tags could allow NaN"
    from ...targets.sklearn import pipeline_steps

    steps = pipeline_steps(estimator) or [estimator]
    # NaN reaches each step in turn until one fills it in: an imputer settles it; a step that
    # refuses NaN before that settles it the other way (a scaler lets NaN through, so a scaler
    # then a logistic regression does not take NaN as missing).
    for step in steps:
        name = type(step).__name__
        where = name if len(steps) == 1 else f"{name}, a step of the Pipeline"
        if type(step).__module__.startswith("sklearn.impute"):
            return True, f"nan_inputs=auto: {where} fills in missing values"
        try:
            allowed = _allows_nan(step)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a third-party estimator's tags
            return False, f"nan_inputs=auto and the scikit-learn tags of {where} could not be read ({type(exc).__name__})"
        if not allowed:
            return False, f"nan_inputs=auto: the scikit-learn tags of {where} say allow_nan=False"
    return True, f"nan_inputs=auto: the scikit-learn tags of {type(steps[-1]).__name__} say allow_nan=True" \
        + (" (and of every step before it)" if len(steps) > 1 else "")


def _allows_nan(estimator) -> bool:
    """The allow_nan tag: ``get_tags`` from scikit-learn 1.6 on, ``_get_tags`` before."""
    try:
        from sklearn.utils import get_tags
    except ImportError:
        return bool(estimator._get_tags().get("allow_nan", False))
    return bool(get_tags(estimator).input_tags.allow_nan)


def plan_cases(by_kind: dict[str, list[FuzzCase]], budget: int) -> list[FuzzCase]:
    """Every kind's first case, then the others kind by kind while ``budget`` rows last.

    Raises NotApplicable when the budget cannot pay for one case of every kind.
    """
    minimum = sum(cases[0].rows for cases in by_kind.values())
    if minimum > budget:
        costly = max(by_kind.values(), key=lambda cases: cases[0].rows)[0]
        raise NotApplicable(
            f"one case of each of the {len(by_kind)} kinds needs {minimum} rows and the budget is {budget} "
            f"(the largest: {costly.kind}, {costly.rows} rows; lower oversized_rows or narrow include)"
        )
    chosen = {kind: [cases[0]] for kind, cases in by_kind.items()}
    spent = minimum
    for depth in range(1, max(len(cases) for cases in by_kind.values())):
        for kind, cases in by_kind.items():
            if depth < len(cases) and spent + cases[depth].rows <= budget:
                chosen[kind].append(cases[depth])
                spent += cases[depth].rows
    return [case for kind in by_kind for case in by_kind[kind] if any(case is c for c in chosen[kind])]


# -- sending and judging ------------------------------------------------------------------------


class _HttpSender:
    """Sends a case as one unchecked request and judges the answer."""

    def __init__(self, target, timeout: float):
        self.target = target
        self.timeout = timeout

    def __call__(self, case: FuzzCase) -> CaseResult:
        def post():
            return self.target.send_raw(
                case.body, rows=case.rows, content_type=case.content_type, timeout=self.timeout, max_answer=8 << 20
            )

        done, answer, seconds = _with_deadline(post, self.timeout)
        result = CaseResult(case.kind, case.description, "", case.rows, seconds)
        if not done:
            result.outcome, result.error = "hang", f"no answer within {self.timeout:g} s"
            return result
        if isinstance(answer, BaseException):
            raise answer  # send_raw reports network failures in its answer; anything else is a bug
        result.status, result.error = answer.status, answer.error
        result.leaks_traceback = _TRACEBACK_MARK in answer.body
        # A traceback's last line names the exception, the most telling part of it.
        lines = answer.body.strip().splitlines() if result.leaks_traceback else []
        result.answer = f"traceback ending: {_excerpt(lines[-1])}" if lines else _excerpt(answer.body)
        if answer.timed_out:
            result.outcome = "hang"
        elif answer.status is None:
            result.outcome = "rejected" if answer.refused_upload else "crash"
        elif answer.status >= 500:
            result.outcome = "server_error"
        elif 200 <= answer.status < 300:
            prediction = _prediction(self.target, answer.body)
            if case.valid:
                result.outcome = "ok" if _well_formed(prediction, case.expected_rows) else "bad_answer"
            else:
                result.outcome = "accepted_invalid" if _holds_prediction(prediction) else "rejected"
        else:  # 4xx, or a status that is no answer at all
            result.outcome = "rejected" if answer.status >= 400 or not case.valid else "bad_answer"
        return result


class _MemorySender:
    """Hands a case to an in-memory model, unchecked, and judges what comes back."""

    def __init__(self, target, timeout: float):
        self.target = target
        self.timeout = timeout

    def __call__(self, case: FuzzCase) -> CaseResult:
        done, value, seconds = _with_deadline(lambda: self.target.predict_raw(case.array), self.timeout)
        result = CaseResult(case.kind, case.description, "", case.rows, seconds)
        if not done:
            result.outcome, result.error = "hang", f"no answer within {self.timeout:g} s"
        elif isinstance(value, BudgetExceeded):
            raise value  # the plan fits the budget, so this is a bug in the check
        elif isinstance(value, BaseException):
            # Input validation raises these; anything else escaped it unhandled. On an empty
            # batch torch's RuntimeError ("cannot reshape tensor of 0 elements", from
            # x.view(len(x), -1) in a classic CNN) is the framework's refusal, as scikit-learn's
            # ValueError on 0 samples is, and once cost a torch model a 'crash' (CVSS 5.3); an
            # IndexError of the model's own code (x[0]) is still a crash.
            clean = isinstance(value, (TargetError, ValueError, TypeError)) or (
                case.kind == "empty_batch" and type(value) is RuntimeError)
            result.outcome = "rejected" if clean else "crash"
            result.error = f"{type(value).__name__}: {_first_line(value)}"
        else:
            result.answer = _excerpt(repr(value).encode())
            if case.valid:
                result.outcome = "ok" if _well_formed_array(value, case.expected_rows) else "bad_answer"
            else:
                result.outcome = "accepted_invalid" if _holds_prediction(value) else "rejected"
        return result


def _with_deadline(call: Callable[[], Any], timeout: float) -> tuple[bool, Any, float]:
    """Run ``call`` in a daemon thread for at most ``timeout`` seconds.

    Returns (finished, its value or the exception it raised, seconds waited). A call still
    running at the deadline is left to finish on its own: Python threads cannot be killed.
    """
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            # Extreme inputs make numpy warn (overflow in casts); the outcome is measured, not printed.
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                box["value"] = call()
        except BaseException as exc:  # the model's failures are what is measured
            box["value"] = exc

    worker = threading.Thread(target=work, name="redline-fuzz-case", daemon=True)
    started = time.perf_counter()
    worker.start()
    worker.join(timeout)
    seconds = round(time.perf_counter() - started, 4)
    if worker.is_alive():
        return False, None, seconds
    return True, box.get("value"), seconds


def _prediction(target, body: bytes) -> Any:
    """The value under the prediction key of a JSON answer, or None."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    found = target.find_prediction(answer)
    return None if found is None else found[1]


def _holds_prediction(value: Any) -> bool:
    """Whether an answer carries a prediction at all (anything but nothing or an empty list)."""
    if value is None:
        return False
    try:
        return int(np.size(np.asarray(value, dtype=object))) > 0
    except (ValueError, TypeError):  # ragged nested lists: still an answer
        return True


def _well_formed(value: Any, rows: int) -> bool:
    """A JSON prediction with one finite row (or label) per input row."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return arr.ndim in (1, 2) and len(arr) == rows and bool(np.all(np.isfinite(arr)))


def _well_formed_array(value: Any, rows: int) -> bool:
    """An in-memory answer with one finite row per input row; class names count as labels."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return False
    if arr.ndim not in (1, 2) or len(arr) != rows:
        return False
    if arr.dtype.kind in "US":
        return True
    if arr.dtype.kind not in "biuf":
        return False
    return bool(np.all(np.isfinite(arr)))


# -- small helpers --------------------------------------------------------------------------


def _raw_transport(target):
    """The service's raw request channel when the target is a remote service, else None."""
    transport = target.raw_transport()
    if transport is not None:
        return transport
    inner = target.wrapped()
    while inner is not None:
        # Through a wrapper every failed request looks like a clean TargetError.
        if inner.raw_transport() is not None:
            raise NotApplicable(f"{target.spec} wraps an HTTP endpoint; fuzz the endpoint itself ({inner.spec})")
        inner = inner.wrapped()
    return None


def _base_row(spec, data, rng: np.random.Generator) -> np.ndarray:
    """A valid input: a random held-out row when the data matches the spec, else the
    middle of the bounds; clipped to the bounds and projected onto the constraints."""
    shape = tuple(spec.shape)
    x = None if data is None else data.any_x()
    if x is not None and len(x) and tuple(x.shape[1:]) == shape:
        row = x[int(rng.integers(len(x)))].astype(np.float64)
    else:
        lo, hi = spec.lower, spec.upper
        middle = (lo + hi) / 2 if math.isfinite(lo) and math.isfinite(hi) else 0.0
        row = np.full(shape, middle, dtype=np.float64)
    row = np.clip(row, spec.lower, spec.upper)
    return spec.constraints.project(row[None], row[None])[0]


def _as_array(inputs: Any) -> np.ndarray:
    try:
        return np.array(inputs)
    except ValueError:  # ragged nesting
        return _object_array(inputs)


def _object_array(inputs: Any) -> np.ndarray:
    return np.array(inputs, dtype=object)


def _json_bytes(obj: Any) -> bytes:
    # Python's json writes NaN and Infinity as bare tokens: not standard JSON, and exactly
    # what a client sending numpy values produces, so the server must cope with them.
    return json.dumps(obj, allow_nan=True).encode("utf-8")


def _excerpt(raw: bytes, limit: int = 160) -> str:
    text = " ".join(raw[: limit * 4].decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "(no message)"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _summary(results: list[CaseResult], counts: dict[str, int], worst: CaseResult | None) -> str:
    kinds = len({r.kind for r in results})
    failures = [f"{counts[o]} {_PLURAL[o][counts[o] != 1]}" for o in FAILURES if counts[o]]
    fine = counts["ok"] + counts["rejected"]
    text = f"Sent {len(results)} malformed or extreme inputs of {kinds} kinds: "
    if not failures:
        return text + "every one was rejected cleanly or answered sensibly."
    return (
        text + ", ".join(failures) + f"; {fine} handled well. "
        f"Worst: {worst.outcome.replace('_', ' ')} on {worst.kind} ({worst.case})."
    )
