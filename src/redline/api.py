"""The Python API: the same scan as ``redline scan``, for notebooks and CI test suites."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .report.model import Report


def scan(
    target: Any,
    data: Any = None,
    *,
    select: str | Sequence[str] | None = None,
    budget: int | None = None,
    seed: int = 0,
    context: Any = None,
    target_config: Any = None,
    out: str | Path | None = None,
    formats: Sequence[str] | str | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
    params: dict[str, dict[str, Any]] | None = None,
    defend: Any = None,
) -> Report:
    """Scan ``target`` and return a :class:`~redline.report.model.Report`.

    Args:
        target: a spec (``zoo:NAME``, ``onnx:PATH``, ``sklearn:PATH``, ``torch:PATH``, a URL),
            a file path, a fitted scikit-learn estimator, a PyTorch module, a Target or a
            callable returning probabilities.
        data: a DATA spec (``builtin:digits``, ``npz:PATH``, ``csv:PATH#label=COL``,
            ``train=SPEC,test=SPEC``), a Dataset, or a dict of arrays by role (any of
            ``x_train``, ``y_train``, ``x_test``... ``x_deploy``; a role's ``y`` may be left out,
            the target then labels it, except a deployment sample's). Zoo targets bring their own data when this is None;
            others need data unless every selected check runs without it (FM06, FM11).
        select: mode codes and/or check ids, e.g. ``"FM01,FM05.equation_solving"``.
        budget: the most rows one check's attack may send to the target.
        context: deployment facts for triage (a YAML path, a dict or a DeploymentContext).
        out: folder for report files, artifacts and the event log; nothing is written if None.
        formats: report formats to write into ``out`` (default json and html).
        resume: continue the scan whose events are in ``out`` (finished checks are kept).
        force: replace an earlier scan's report in ``out``; without ``resume`` or ``force``
            a folder holding one is refused, so no earlier work is lost.
        params: check parameters by check id, e.g. ``{"FM01.pgd": {"epsilon": 0.1, "norm": "l2"}}``;
            an unknown check or parameter, a bad value, or parameters for a check that
            ``select`` leaves out raise UsageError before anything is loaded or queried.
            ``redline checks CHECK`` lists a check's parameters.
        defend: a guard policy file (``guard.yaml``) or a list of
            :class:`~redline.defences.Defence` objects: the scan attacks the target behind
            them and runs the same checks against the bare target, and ``report.defences``
            compares the two ("What the defences buy").

    ``report.exit_code(fail_on)`` is what ``redline scan --fail-on`` would exit with (1 a
    finding reached ``fail_on``, 3 the scan could not test what was asked, else 0), so a
    CI test can gate on ``report.exit_code("important") == 0``: unlike ``worst_severity``
    alone, that also fails a scan whose checks all errored or were inconclusive.
    """
    from .pipeline import ScanRequest, run_scan
    from .pipeline.progress import Progress

    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    request = ScanRequest(target=target, data=data, select=select, budget=budget, seed=seed,
                          context=context, target_config=target_config, params=params, defend=defend)
    return run_scan(request, out_dir=out, formats=formats, resume=resume, force=force, progress=Progress(enabled=progress))
