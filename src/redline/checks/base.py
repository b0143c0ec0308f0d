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

from ..data.base import Dataset
from ..errors import BudgetExceeded, RedlineError
from ..findings import Finding, Status, finding_id
from ..targets.base import QueryLedger, Target


@dataclasses.dataclass(frozen=True)
class Needs:
    """Capabilities a check requires; anything left None is not required."""

    outputs: str | None = None  # "probabilities" when labels alone are not enough
    gradients: bool = False
    trainable: bool = False
    modality: tuple[str, ...] | None = None  # e.g. ("image",)
    task: str = "classification"

    def unmet(self, target: Target, data: Dataset | None) -> str | None:
        caps = target.capabilities
        if self.outputs == "probabilities" and caps.outputs != "probabilities":
            return "the target returns labels only, and this check needs probabilities"
        if self.gradients and not caps.gradients:
            return "the target exposes no gradients (white-box access needed)"
        if self.trainable and not caps.trainable:
            return "the target has no training recipe (name a train function in the target config)"
        if data is not None:
            if self.modality and data.modality not in self.modality:
                return f"this check handles {'/'.join(self.modality)} data, the data set is {data.modality}"
            if data.task != self.task:
                return f"this check handles {self.task}, the data set is {data.task}"
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
    """Where a check writes artifacts and reports progress."""

    def __init__(self, out_dir: Path | None = None, progress: Callable[[int, int], None] | None = None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self._progress = progress

    def artifact(self, name: str) -> tuple[Path | None, str]:
        """(absolute path to write, path relative to the report folder); (None, '') when not writing."""
        if self.out_dir is None:
            return None, ""
        rel = f"artifacts/{name}"
        path = self.out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, rel

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

    # -- scikit-learn style parameters ---------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Check":
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{self.id} has no parameter {k!r} (has: {', '.join(sorted(valid))})")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- the procedure ---------------------------------------------------------------
    def applicability(self, target: Target, data: Dataset | None) -> str | None:
        """None if the check can run on this target and data, else the reason it cannot."""
        if data is None:
            return "no data set was given"
        return self.needs.unmet(target, data)

    @staticmethod
    def _discover(target: Target, data: Dataset | None) -> None:
        """Settle capabilities a remote target reveals only when it answers: one evaluation
        row, counted in this finding. An unreachable target raises TargetError here."""
        if data is not None and target.needs_discovery():
            with target.ledger.evaluating():
                target.predict(data.x_test[:1])

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
            id=finding_id(self.id, target.spec, params, seed, budget),
            mode=self.mode,
            check=self.id,
            title=self.title,
            status=Status.NOT_APPLICABLE,
            params=params,
            seed=seed,
        )
        previous_ledger = target.ledger
        target.ledger = ledger = QueryLedger(budget)
        started = time.perf_counter()
        try:
            self._discover(target, data)
            reason = self.applicability(target, data)
            if reason:
                finding.reason = reason
                return finding
            outcome = self.run(target, data, budget, np.random.default_rng(seed), ctx or CheckContext())
        except NotApplicable as exc:
            finding.reason = str(exc)
        except Inconclusive as exc:
            finding.status, finding.reason, finding.metrics = Status.INCONCLUSIVE, str(exc), exc.metrics
        except BudgetExceeded as exc:  # a check must plan within its budget; this is a bug in the check
            finding.status, finding.reason = Status.ERROR, str(exc)
        except RedlineError as exc:
            finding.status, finding.reason = Status.ERROR, str(exc)
        except Exception as exc:  # one crashing check must not kill the scan
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
        finally:
            finding.seconds = time.perf_counter() - started
            finding.queries = ledger.attack
            finding.evaluation_queries = ledger.evaluation
            target.ledger = previous_ledger
            previous_ledger.attack += ledger.attack
            previous_ledger.evaluation += ledger.evaluation
        return finding
