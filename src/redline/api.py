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
    progress: bool = False,
) -> Report:
    """Scan ``target`` and return a :class:`~redline.report.model.Report`.

    Args:
        target: a spec (``zoo:NAME``, ``onnx:PATH``, ``sklearn:PATH``, ``torch:PATH``, a URL),
            a file path, a fitted scikit-learn estimator, a PyTorch module, a Target or a
            callable returning probabilities.
        data: a DATA spec (``builtin:digits``, ``npz:PATH``, ``csv:PATH#label=COL``), a
            Dataset, or a dict of arrays by role (``x_train``, ``y_train``, ``x_test``...).
            Zoo targets bring their own data when this is None.
        select: mode codes and/or check ids, e.g. ``"FM01,FM05.equation_solving"``.
        budget: the most rows one check's attack may send to the target.
        context: deployment facts for triage (a YAML path, a dict or a DeploymentContext).
        out: folder for report files, artifacts and the event log; nothing is written if None.
        formats: report formats to write into ``out`` (default json and html).

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
                          context=context, target_config=target_config)
    return run_scan(request, out_dir=out, formats=formats, resume=resume, progress=Progress(enabled=progress))
