"""What a check is: a named, parameterised procedure that returns an Outcome.

A check holds only its hyperparameters (stored as given, validated in ``run``), declares
what it needs from a target, and implements ``run``. :meth:`Check.__call__` does the rest:
applicability, a fresh query ledger with the budget, timing, and turning the outcome (or a
crash) into a :class:`~redline.findings.Finding`. Severity is assigned later by triage.
"""
from __future__ import annotations

import abc
import dataclasses
import inspect
import time
import traceback
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from ..data.base import ROLE_MEANING, Dataset
from ..errors import BudgetExceeded, OutputError, RedlineError
from ..findings import Finding, Status, finding_id
from ..targets.base import QueryLedger, Target
from ..util.atomic import STORAGE_FULL, output_error, writing_output


# Fewest test rows that can be halved into attacker rows and evaluation rows.
MIN_TEST_ROWS_TO_SPLIT = 4


@dataclasses.dataclass(frozen=True)
class Needs:
    """Capabilities and data a check requires; anything left None is not required.

    ``roles``: the data roles the check reads (train, test, pool, deploy); a missing one makes the
    check not_applicable with the reason. ``attacker``: it reads attacker-owned rows
    (``data.attacker_data()``): the pool, or else a fixed half of the test rows, the
    finding says so. ``disjoint``: the rows it measures its result on
    (``data.evaluation_data()``) must not be the attacker's rows. ``labels``: it reads labels
    (of those rows, or of any other role it uses when given); every label the data set gives
    must then be one of the target's class indices (the deployment sample's excepted: it may
    hold a class the model never saw), else the check ends in a one-line error.
    ``labels_from_target``: rows of its roles given without labels are labelled by the
    target; False for a check that needs the true labels (against the target's own answers
    it would always pass) and says itself when they are missing.
    ``roles=()`` and no ``attacker``: the check runs without any data.
    """

    outputs: str | None = None  # "probabilities" when labels alone are not enough
    gradients: bool = False
    trainable: bool = False
    modality: tuple[str, ...] | None = None  # e.g. ("image",)
    task: str = "classification"
    roles: tuple[str, ...] = ("test",)
    attacker: bool = False
    disjoint: bool = True
    labels: bool = True
    labels_from_target: bool = True

    @property
    def needs_data(self) -> bool:
        return bool(self.roles) or self.attacker

    def labelled_roles(self, data: Dataset) -> tuple[str, ...]:
        """The roles the target labels when they come without labels: those the check reads
        (the pool or test when it reads attacker data), unless it needs true labels."""
        if not (self.labels and self.labels_from_target):
            return ()
        wanted = set(self.roles)
        if self.attacker:
            wanted.add("pool" if data.has("pool") else "test")
        return tuple(role for role in data.roles if role in wanted)

    def true_label_roles(self, data: Dataset) -> tuple[str, ...]:
        """The roles whose true labels a check that never asks the target for labels reads:
        every role but the deployment sample (it may read one beyond its ``roles``, such as
        training labels for class priors); none for other checks."""
        if not self.labels or self.labels_from_target:
            return ()
        return data.reference_roles

    def missing_data(self, data: Dataset) -> str | None:
        """Why ``data`` lacks a role this check reads, or None."""
        missing = [role for role in self.roles if not data.has(role)]
        if missing:
            wanted = "; ".join(f"{role} ({ROLE_MEANING[role]})" for role in missing)
            how = ("; give a deployment sample as deploy=SPEC in --data, or x_deploy (y_deploy optional) in the npz"
                   if "deploy" in missing else "")
            return f"this check needs the role {wanted}, and the data set has only {', '.join(data.roles)}{how}"
        if self.attacker and not data.has("pool"):
            if not data.has("test"):
                return "this check needs attacker data: a pool, or test rows to split off, and the data set has neither"
            if self.disjoint and len(data.x_test) < MIN_TEST_ROWS_TO_SPLIT:
                return (f"without a pool this check splits the test rows into attacker and evaluation halves; "
                        f"{len(data.x_test)} test rows are too few (give a pool)")
        return None

    def unmet(self, target: Target, data: Dataset | None) -> str | None:
        caps = target.capabilities
        if self.outputs == "probabilities" and caps.outputs != "probabilities":
            return "the target returns labels only, and this check needs probabilities"
        if self.gradients and not caps.gradients:
            return "the target exposes no gradients (white-box access needed)"
        if self.trainable and not caps.trainable:
            return ("the target has no training recipe (add `train: module:function` to the file given "
                    "with --target-config)")
        if data is not None:
            if self.modality and data.modality not in self.modality:
                return f"this check handles {'/'.join(self.modality)} data, the data set is {data.modality}"
            if data.task != self.task:
                return f"this check handles {self.task}, the data set is {data.task}"
            return self.missing_data(data)
        return None


@dataclasses.dataclass
class Outcome:
    """What ``run`` returns: the verdict and the measurements behind it.

    ``inconclusive``, when not empty, says the run could not decide: why, and what would make
    it decide (more records, a larger budget). The finding is then ``inconclusive`` whatever
    ``vulnerable`` says, with this text as its reason, and its metrics are still reported.
    """

    vulnerable: bool
    metrics: dict[str, Any]
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: str = ""
    inconclusive: str = ""


class NotApplicable(RedlineError):
    """Raised from ``run`` when the check finds at run time that it cannot apply."""


class Inconclusive(RedlineError):
    """Raised from ``run`` when the check finds before measuring anything that its sample or
    budget cannot decide; the message says what would (more records, a larger budget).
    A run that measured something returns ``Outcome(..., inconclusive=...)`` instead."""

    def __init__(self, message: str, metrics: dict[str, Any] | None = None):
        super().__init__(message)
        self.metrics = dict(metrics or {})


class CheckContext:
    """Where a check writes artifacts and reports progress, and what the scan knows beyond
    the target and data: the ``operating_conditions`` parsed from the ``--context`` system
    description (FM17 reads them), the ``earlier`` findings of the same scan, and the
    ``target_digest`` of the target's full spec when its ``spec`` is redacted (part of the id)."""

    def __init__(self, out_dir: Path | None = None, progress: Callable[[int, int], None] | None = None,
                 operating_conditions: Any = None, earlier: tuple[Finding, ...] = (),
                 target_digest: str | None = None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self._progress = progress
        self.operating_conditions = operating_conditions
        self.earlier = tuple(earlier)
        self.target_digest = target_digest

    def artifact(self, name: str) -> tuple[Path | None, str]:
        """(absolute path to write, path relative to the report folder); (None, '') when not writing."""
        if self.out_dir is None:
            return None, ""
        from ..util.safe_paths import out_file

        rel = f"artifacts/{name}"
        with writing_output(self.out_dir / rel):  # the artifacts folder cannot be made: the scan stops
            return out_file(self.out_dir, rel), rel  # never through a link planted in --out

    def progress(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(done, total)


class Check(abc.ABC):
    """Base of every check. Subclasses set the class attributes and implement ``run``."""

    id: ClassVar[str]
    mode: ClassVar[str]
    title: ClassVar[str]
    needs: ClassVar[Needs] = Needs()
    default_budget: ClassVar[int] = 10_000
    # The metric names the check may report (the contract test holds it to them).
    metrics: ClassVar[tuple[str, ...]] = ()
    # One line per constructor parameter: what it means (``redline checks CHECK`` shows it).
    param_docs: ClassVar[dict[str, str]] = {}

    # -- scikit-learn style parameters ---------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Check":
        from ..errors import UsageError

        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise UsageError(f"{self.id} has no parameter {k!r} (has: {', '.join(valid) or 'none'})")
            setattr(self, k, v)
        return self

    def validate_params(self) -> None:
        """Refuse bad parameter values before any target is loaded: each value must fit its
        annotation, then the check's own ``_validate`` runs. A ``_validate`` that needs the
        target takes it as an optional argument and, given None, checks only what it can
        without one (the rest is checked in ``run``). Raises UsageError naming the check."""
        from ..errors import UsageError
        from .params import check_value, param_specs

        for spec in param_specs(type(self)):
            check_value(self.id, spec, getattr(self, spec.name))
        validate = getattr(self, "_validate", None)
        if validate is None:
            return
        args = list(inspect.signature(validate).parameters.values())
        if any(a.default is a.empty and a.kind in (a.POSITIONAL_ONLY, a.POSITIONAL_OR_KEYWORD) for a in args):
            return  # needs a target to say anything: validated in run
        try:
            validate(*([None] if args else []))
        except NotApplicable:
            pass  # not a parameter problem
        except UsageError as exc:
            text = str(exc)
            raise UsageError(text if text.startswith(f"{self.id}") else f"{self.id}: {text}") from None
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{self.id}: {exc}") from None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the procedure ---------------------------------------------------------------
    def applicability(self, target: Target, data: Dataset | None) -> str | None:
        """None if the check can run on this target and data, else the reason it cannot."""
        if data is None and self.needs.needs_data:
            return "no data set was given"
        return self.needs.unmet(target, data)

    def _prepare_data(self, target: Target, data: Dataset | None) -> tuple[Dataset | None, list[str]]:
        """Labels from the target for the rows the check reads without labels, and notes
        for the finding on how its data was found (labels from the target, attacker halves)."""
        from ..data.labels import label_with_target, require_class_indices

        if data is None:
            return None, []
        notes = []
        if isinstance(data, Dataset):
            _require_rows_within_ranges(data, target)
        data, asked = label_with_target(data, target, self.needs.labelled_roles(data))
        if data.task != "regression":
            if target.n_classes == 1:  # a regressor: its whole-number targets would pass as class labels
                from ..errors import DataError

                raise DataError(f"{target.spec} answers one value per row (a regressor) but the data set "
                                f"{data.name!r} is for classification: say task=regression (a DATA spec's #task=regression, or \"task\": "
                                f"\"regression\" among the arrays)")
            mismatch = getattr(target, "label_mismatch", None)
            if self.needs.labels and mismatch:  # found at load (scikit-learn, HTTP class names): the numbering is off
                from ..errors import DataError

                raise DataError(mismatch)
            require_class_indices(data, target.n_classes, self.needs.labelled_roles(data))
            # True labels: whole, non-negative numbers; one past the model's classes is a row it
            # can never answer right (a class it was not trained on), which these checks measure.
            require_class_indices(data, None, self.needs.true_label_roles(data))
        for role, rows in asked.items():
            notes.append(f"labels from the target for the {role} rows ({rows}, counted as evaluation queries)")
        if self.needs.attacker and not data.has("pool"):
            notes.append(data.attacker_note() if self.needs.disjoint else
                         "no pool: the attacker's data is the test rows")
        return data, notes

    @staticmethod
    def _discover(target: Target, data: Dataset | None) -> None:
        """Settle capabilities a remote target reveals only when it answers: one evaluation
        row, counted in this finding. An unreachable target raises TargetError here."""
        if data is not None and target.needs_discovery():
            with target.ledger.evaluating():
                target.predict(data.any_x()[:1])

    @abc.abstractmethod
    def run(self, target: Target, data: Dataset, budget: int, rng: np.random.Generator, ctx: CheckContext) -> Outcome:
        """Attack or test the target within ``budget`` attack queries; return the outcome."""

    def __call__(
        self,
        target: Target,
        data: Dataset | None,
        budget: int | None = None,
        seed: int = 0,
        ctx: CheckContext | None = None,
    ) -> Finding:
        budget = self.default_budget if budget is None else int(budget)
        params = self.get_params()
        finding = Finding(
            id=finding_id(self.id, target.spec, params, seed, budget, ctx.target_digest if ctx else None),
            mode=self.mode,
            check=self.id,
            title=self.title,
            status=Status.NOT_APPLICABLE,
            params=params,
            seed=seed,
            budget=budget,
        )
        previous_ledger = target.ledger
        target.ledger = ledger = QueryLedger(budget)
        started = time.perf_counter()
        try:
            self.validate_params()  # a bad value is a one-line error, not a traceback
            self._discover(target, data)
            reason = self.applicability(target, data)
            if reason:
                finding.reason = reason
                return finding
            data, notes = self._prepare_data(target, data)
            outcome = self.run(target, data, budget, np.random.default_rng(seed), ctx or CheckContext())
        except NotApplicable as exc:
            finding.reason = str(exc)
        except Inconclusive as exc:
            finding.status, finding.reason, finding.metrics = Status.INCONCLUSIVE, str(exc), exc.metrics
        except BudgetExceeded as exc:  # a check must plan within its budget; this is a bug in the check
            finding.status, finding.reason = Status.ERROR, str(exc)
        except RedlineError as exc:
            finding.status, finding.reason = Status.ERROR, str(exc)
        except OutputError:
            raise  # an artifact could not be written: the scan stops, and this check did not finish
        except Exception as exc:  # one crashing check must not kill the scan
            if isinstance(exc, OSError) and exc.errno in STORAGE_FULL:
                # A full disk or file-size limit, whatever was being written: no fault of the target.
                where = exc.filename or (ctx.out_dir if ctx is not None and ctx.out_dir is not None else "a file")
                raise output_error(where, exc) from None
            finding.status = Status.ERROR
            finding.reason = f"{type(exc).__name__}: {exc}"
            finding.evidence = {"traceback": traceback.format_exc(limit=8)}
        else:
            if outcome.inconclusive:
                finding.status, finding.reason = Status.INCONCLUSIVE, outcome.inconclusive
            else:
                finding.status = Status.VULNERABLE if outcome.vulnerable else Status.NOT_VULNERABLE
            finding.metrics = dict(outcome.metrics)
            finding.evidence = dict(outcome.evidence)
            finding.summary = outcome.summary
            if notes:
                finding.evidence["data"] = "; ".join(notes)
        finally:
            finding.seconds = time.perf_counter() - started
            finding.queries = ledger.attack
            finding.evaluation_queries = ledger.evaluation
            if ledger.retried:  # rows sent again after failed requests, already in the two counts above
                finding.evidence["retried_rows"] = ledger.retried
            target.ledger = previous_ledger
            previous_ledger.attack += ledger.attack
            previous_ledger.evaluation += ledger.evaluation
            previous_ledger.retried_attack += ledger.retried_attack
            previous_ledger.retried_evaluation += ledger.retried_evaluation
        return finding


def _require_rows_within_ranges(data: Dataset, target: Target) -> None:
    """Refuse data whose rows mostly lie outside a range the target config declares for a
    feature (``constraints.ranges``): the config or the data is wrong (pixels in [0, 255]
    against [0, 1], a column in other units), and an attack clipped to the declared range
    would measure nothing real. A few rows beyond it (a heavy tail) are left alone."""
    from ..errors import DataError

    ranges = target.input_spec.constraints.ranges
    if not ranges:
        return
    names = data.feature_names
    for role in data.reference_roles:
        x = data.x(role)
        if x is None or not len(x):
            continue
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        for i, lo, hi in ranges:
            if i >= flat.shape[1]:
                continue
            column = flat[:, i]
            outside = float(np.mean((column < lo) | (column > hi)))
            if outside > 0.5:
                name = names[i] if names and i < len(names) else f"feature {i}"
                raise DataError(
                    f"{outside:.0%} of the {role} rows have {name} outside [{lo:g}, {hi:g}], the range the target "
                    f"config declares for it (constraints.ranges); the rows take {np.nanmin(column):g} to "
                    f"{np.nanmax(column):g}. Fix the range or the data's units")

