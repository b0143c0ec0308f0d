"""Scan orchestration: resolve target and data, plan checks, run each in isolation,
triage, log events as they happen, and write the reports.

One check's crash becomes an ``error`` finding; the scan goes on. With ``resume`` the
findings already logged in ``events.jsonl`` are kept and only unfinished checks run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from ..catalog import MODE_CODES
from ..checks import CheckContext, plan
from ..checks.params import normalise_params, resolve_checks
from ..errors import OutputError, UsageError
from ..findings import Finding, Status, target_digest
from ..report.model import Report
from ..report.writers import Format
from ..util.urls import redact_url
from .events import EVENTS_FILE, EventLog, count_finished, finished_findings, now_iso
from .progress import Progress


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan: the partial report was written (marked incomplete) before this was raised.

    A KeyboardInterrupt, so code that stops on Ctrl-C still stops; ``report`` is what was saved.
    """

    def __init__(self, report: Report):
        super().__init__("scan interrupted")
        self.report = report


# Files a scan writes into --out; their presence means the folder holds someone's results.
_REPORT_MARKERS = (EVENTS_FILE, "report.json")
_OWN_OUTPUTS = (EVENTS_FILE, *(fmt.filename for fmt in Format))
_OWN_FOLDERS = ("artifacts",)


def prepare_out_dir(out: Path, *, resume: bool, force: bool) -> OutDirLock:
    """Make sure ``out`` can take this scan's results without losing an earlier scan's, and
    lock it for this scan: the caller releases the returned lock when the scan ends.

    Runs before anything is loaded or queried: a folder we cannot write, one another scan is
    writing right now, or one holding a previous report (unless --resume continues it or
    --force replaces it), is a usage error.
    """
    if resume and force:
        raise UsageError("--resume keeps the earlier results and --force deletes them; pass only one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".redline-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    # Held until the scan ends: a second scan into this folder is refused at once, before it
    # reads (or, with --force, deletes) anything of the first one.
    lock = OutDirLock.acquire(out)
    try:
        present = [name for name in _REPORT_MARKERS if _holds_results(out / name)]
        if present and not resume and not force:
            raise UsageError(
                f"--out {out} already holds a scan ({present[0]}); pass --resume to continue it, "
                "--force to replace it, or choose another --out"
            )
        if force:
            # Only what a scan itself writes is removed; anything else in the folder stays.
            for name in _OWN_OUTPUTS:
                (out / name).unlink(missing_ok=True)
            for name in _OWN_FOLDERS:
                if (out / name).is_dir() and not (out / name).is_symlink():
                    shutil.rmtree(out / name)
    except BaseException:
        lock.release()
        raise
    return lock


LOCK_FILE = ".redline.lock"


class OutDirLock:
    """An exclusive lock on an --out folder, held by one scan from before it looks at the
    folder until it ends: ``flock`` on ``LOCK_FILE`` inside it.

    The kernel drops the lock when the process ends however it ends (SIGKILL included), so a
    lock file left behind by a killed scan never blocks the next one. The file is removed on
    release, while still locked; a scan that opened it just before then finds, once it holds
    the lock, that the path names another file (or none), and starts over.
    """

    def __init__(self, path: Path, fd: int | None):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, out: Path) -> OutDirLock:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: scans are not serialised
            return cls(out / LOCK_FILE, None)
        path = out / LOCK_FILE
        while True:
            # O_NOFOLLOW: a link planted at the lock's name must not make us create files elsewhere
            flags = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
            except PermissionError:
                # Left by another user's killed scan in a shared folder: flock needs no write access.
                try:
                    fd = os.open(path, os.O_RDONLY | flags)
                except OSError as exc:
                    raise UsageError(f"cannot lock --out {out} ({path.name}): {exc.strerror or exc}") from None
            except OSError as exc:
                raise UsageError(f"cannot lock --out {out} ({path.name}): {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UsageError(
                    f"--out {out} is being written by another scan right now; wait for it to end "
                    "or choose another --out"
                ) from None
            except OSError:  # a file system without flock: go on unlocked rather than refuse every scan
                os.close(fd)
                return cls(path, None)
            try:
                current = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                return cls(path, fd)
            os.close(fd)  # the scan that held it removed it meanwhile: lock the file now there

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False)):
                    self.path.unlink()
        finally:
            os.close(fd)  # drops the lock


def _holds_results(path: Path) -> bool:
    """Whether ``path`` holds work a new scan would lose. An event log counts only once a
    check finished: a scan stopped before its first check (a model file that failed its
    static scan, a refused target) leaves nothing to keep, and must not block the next run."""
    if not path.exists():
        return False
    if path.name != EVENTS_FILE or not path.is_file() or path.is_symlink():
        return True
    try:
        with path.open("rb") as log:
            return any(b'"check_finished"' in line for line in log)
    except OSError:
        return True


@dataclasses.dataclass
class ScanRequest:
    """Everything that determines a scan's results (and so its resume fingerprint)."""

    target: Any
    data: Any = None
    select: str | Sequence[str] | None = None
    budget: int | None = None
    seed: int = 0
    context: Any = None
    target_config: Any = None
    # Check parameters by check id ({"FM01.pgd": {"epsilon": 0.1}}); see redline.checks.params.
    params: dict[str, dict[str, Any]] | None = None
    # Budgets by check id that replace ``budget`` for those checks (the demo's reduced tour).
    budgets: dict[str, int] | None = None
    # A sentence by check id added to that check's finding summary (e.g. "ran with the demo budget").
    notes: dict[str, str] | None = None
    # Scan the target behind these defences (a guard policy file or a list of Defence objects)
    # and compare with the bare target: the report's "What the defences buy" (pipeline/defended.py).
    defend: Any = None

    def budget_for(self, check: Any) -> int:
        """The budget ``check`` runs with: its own from ``budgets``, else the scan's, else its default."""
        if self.budgets and check.id in self.budgets:
            return self.budgets[check.id]
        return self.budget if self.budget is not None else check.default_budget

    def fingerprint(self, target_spec: str, data_spec: str, context: dict[str, Any], *,
                    inputs: dict[str, str] | None = None) -> str:
        """What decides the scan's results, hashed: the arguments, and the contents of the local
        files they name (``inputs``, from :func:`scan_inputs`; worked out here when not given)."""
        if inputs is None:
            inputs = scan_inputs(self, target_spec, data_spec)
        blob = json.dumps(
            {
                "target": target_spec,
                "data": data_spec,
                "select": self.select if isinstance(self.select, (str, type(None))) else list(self.select),
                "budget": self.budget,
                "seed": self.seed,
                "context": context,
                "params": normalise_params(self.params),
                # Only when set, so the fingerprints of earlier scans (and their --resume) stay valid.
                **({"budgets": dict(sorted(self.budgets.items()))} if self.budgets else {}),
                **({"defend": str(self.defend)} if self.defend is not None else {}),
                **({"inputs": dict(sorted(inputs.items()))} if inputs else {}),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def scan_inputs(request: ScanRequest, target_spec: str, data_spec: str, target_config: Any = None) -> dict[str, str]:
    """The contents (sha256) of the local files a scan reads, by what they are: the model file
    of the target, the data files of the data spec (each role's), the --target-config (its
    text, or the mapping given in Python), the model file the config names as ``baseline`` and
    the --defend policy file. Keys hold the names as given (relative stays relative), values no
    time or absolute path, so the same inputs give the same entries in any process.

    Specs that name no local file (zoo:, builtin:, URLs, py:module:attr, objects) add nothing:
    their text is in the fingerprint already; nor does a TARGET naming no existing file. A data
    or config file that is missing counts as ``missing`` (the scan itself says what is wrong).
    """
    from ..targets.adapters import model_file_path

    found: dict[str, str] = {}
    if _is_model_file(request.target):
        path = model_file_path(str(request.target))
        if path is not None and (path.exists() or path.is_symlink()):  # else not a file (an unknown scheme)
            found[f"model file {path}"] = _file_digest(path)
    for location in _data_files(data_spec):
        found[f"data file {location}"] = _file_digest(Path(location).expanduser())
    config = request.target_config
    if isinstance(config, (str, Path)):
        found["target config"] = _file_digest(Path(config))
        if target_config is None or isinstance(target_config, (str, Path)):
            with contextlib.suppress(Exception):  # a bad config is refused by the scan itself
                from ..targets.config import load_target_config

                target_config = load_target_config(config)
    elif config is not None:
        found["target config"] = _text_digest(_config_text(config))
        target_config = config
    baseline = getattr(target_config, "baseline", None) if target_config is not None else None
    if isinstance(baseline, str) and not baseline.startswith("py:"):
        path = model_file_path(baseline)
        if path is not None and path.exists():
            found[f"baseline model file {path}"] = _file_digest(path)
    if isinstance(request.defend, (str, Path)):
        found["guard policy"] = _file_digest(Path(request.defend))
    return found


def _data_files(data_spec: str) -> list[str]:
    """The file paths (as written) in a DATA spec: ``npz:PATH``, ``csv:PATH#...``, and those of
    each part of ``ROLE=SPEC,ROLE=SPEC``; none for builtin:, env: or arrays."""
    from ..data.loaders import _ROLE_CUT, _ROLE_PREFIX, _split_fragment

    if not isinstance(data_spec, str) or not data_spec.strip():
        return []
    if _ROLE_PREFIX.match(data_spec):
        parts = [chunk.partition("=")[2].strip() for chunk in _ROLE_CUT.split(data_spec.strip())]
    else:
        parts = [data_spec]
    files = []
    for part in parts:
        kind, sep, rest = part.partition(":")
        if sep and kind.strip().lower() in ("npz", "csv"):
            location, _ = _split_fragment(rest)
            if location:
                files.append(location)
    return files


def _file_digest(path: Path) -> str:
    """sha256 of the file's bytes, read in blocks (model files may be large); ``missing`` or
    ``not a file`` when there is no file to read."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return digest.hexdigest()


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _config_text(config: Any) -> str:
    """A target config given in Python (a mapping or a TargetConfig), as stable text."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "base_dir"}
    try:
        return json.dumps(config, sort_keys=True, default=str)
    except (TypeError, ValueError):  # keys of mixed types
        return repr(config)


def _load_context(context: Any):
    from ..triage.context import DeploymentContext

    if context is None:
        return None
    if isinstance(context, DeploymentContext):
        return context
    if isinstance(context, dict):
        return DeploymentContext.from_dict(context)
    path = Path(context)
    if not path.is_file():
        raise UsageError(f"context file not found: {path}")
    return DeploymentContext.from_yaml(path)


def _operating_conditions(context: Any) -> tuple[Any, Any]:
    """(parsed, raw) ``operating_conditions`` of a system description given as --context (a
    mapping or a YAML path), or (None, None); a malformed section is a usage error here,
    before any work."""
    from collections.abc import Mapping

    from ..checks.robustness.conditions import SECTION, parse_operating_conditions

    raw = context
    if isinstance(context, (str, Path)):
        from ..util.safe_yaml import load_yaml_file

        raw = load_yaml_file(Path(context), "context file")
    if not isinstance(raw, Mapping) or raw.get(SECTION) is None:
        return None, None
    source = f"operating_conditions of {context}" if isinstance(context, (str, Path)) else "operating_conditions"
    path = str(context) if isinstance(context, (str, Path)) else ""
    return parse_operating_conditions(raw[SECTION], source, path), raw[SECTION]


def _resolve_data(data: Any, target_arg: Any):
    from ..data import as_dataset, load_data

    if data is None:
        if isinstance(target_arg, str) and target_arg.startswith("zoo:"):
            from .. import zoo

            return zoo.load_data_for(target_arg[4:])
        return None
    if isinstance(data, str):
        return load_data(data)
    return as_dataset(data)


def _is_model_file(target: Any) -> bool:
    """A target named by a file path (statically scanned before it is loaded)."""
    from ..targets.adapters import model_file_path

    if not isinstance(target, (str, Path)):
        return False
    return not str(target).startswith("py:") and model_file_path(str(target)) is not None


def _require_something_to_run(request: ScanRequest, checks: list, data: Any, target_spec: str) -> None:
    """A usage error, before any work, when the scan as asked would test nothing: only FM09
    selected for a target that is not a model file, or no data for checks that read data
    (for a model file that comes after its static scan, so an unsafe file is still reported)."""
    from ..checks import STATIC_SCAN_MODE

    if not checks:
        if _is_model_file(request.target):
            return  # the static scan (FM09) is what was asked for
        from ..targets.adapters import either, of_kind

        file_schemes = either([f"{a.scheme}:" for a in of_kind("file")] + ["a path"])
        raise UsageError(f"--select {request.select}: {STATIC_SCAN_MODE} is the static scan of a model file "
                         f"({file_schemes}), and {target_spec} is not one")
    if not _is_model_file(request.target):
        _require_data(checks, data, target_spec)


def _require_data(checks: list, data: Any, target_spec: str) -> None:
    """A usage error when a selected check reads data and none was given."""
    if data is not None:
        return
    readers = [c.id for c in checks if c.needs.needs_data]
    if readers:
        free = [c.id for c in checks if not c.needs.needs_data]
        alternative = f"; of those selected only {', '.join(free)} run without data" if free else ""
        shown = ", ".join(readers[:4]) + (f" and {len(readers) - 4} more" if len(readers) > 4 else "")
        raise UsageError(f"--data is required for {target_spec} (the selected checks {shown} read data{alternative})")


def _describe_target_arg(target: Any) -> str:
    if isinstance(target, (str, Path)):
        return str(target)
    spec = getattr(target, "spec", None)
    return spec if isinstance(spec, str) else f"python:{type(target).__module__}.{type(target).__qualname__}"


def coverage_of(findings: list[Finding]) -> dict[str, str]:
    """tested if any check of the mode produced a verdict; inconclusive if the best any of
    them got was inconclusive; not_applicable if all of its checks were inapplicable;
    not_covered otherwise (no check, or only errors)."""
    cov: dict[str, str] = {}
    for code in MODE_CODES:
        statuses = {f.status for f in findings if f.mode == code}
        if statuses & {Status.VULNERABLE, Status.NOT_VULNERABLE}:
            cov[code] = "tested"
        elif Status.INCONCLUSIVE in statuses:
            cov[code] = "inconclusive"
        elif statuses and statuses == {Status.NOT_APPLICABLE}:
            cov[code] = "not_applicable"
        else:
            cov[code] = "not_covered"
    return cov


def run_scan(
    request: ScanRequest,
    *,
    out_dir: str | Path | None = None,
    formats: Sequence[str] | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    on_finding: Callable[[Finding, str, str], None] | None = None,
) -> Report:
    """Run a scan and return its Report; writes reports and events when ``out_dir`` is given.

    ``on_finding(finding, target_spec, data_spec)`` is called as each new finding is made
    (rated), e.g. to record it in a failure-case registry while the scan goes on.

    ``out_dir`` must not hold an earlier scan unless ``resume`` continues it or ``force``
    replaces it, nor be written by another scan at the same time (it is locked from before
    it is looked at until this scan ends, however it ends). Ctrl-C writes the report of the
    checks that finished (marked incomplete) and raises :class:`ScanInterrupted`. A file in
    ``out_dir`` that cannot be written (a full disk, a file-size limit) stops the scan with
    :class:`~redline.errors.OutputError`: the checks finished before are kept in the event log
    (``kept`` says how many), the one that was running is not, and ``resume`` runs it again.
    """
    with contextlib.ExitStack() as held:  # the --out lock, released on any exit
        try:
            return _run_scan(request, held, out_dir=out_dir, formats=formats, resume=resume, force=force,
                             progress=progress, on_finding=on_finding)
        except OutputError as stop:
            # Like Ctrl-C, minus the report (the disk that refused a file would refuse it too):
            # what the event log holds is kept for --resume, which also writes the reports.
            if out_dir is not None and stop.kept is None:
                stop.kept = count_finished(EventLog(Path(out_dir) / EVENTS_FILE))
            raise


def _run_scan(
    request: ScanRequest,
    held: contextlib.ExitStack,
    *,
    out_dir: str | Path | None,
    formats: Sequence[str] | None,
    resume: bool,
    force: bool,
    progress: Progress | None,
    on_finding: Callable[[Finding, str, str], None] | None,
) -> Report:
    from ..targets import load_target
    from .deployment import as_deployed, deployment_context, note_rate_limit

    progress = progress or Progress(enabled=False)
    checks = plan(request.select)  # validate --select before any heavy loading
    # Parameters are validated here too, before any data, model or query.
    instances = resolve_checks(checks, request.params)
    _check_per_check_settings(request, instances)
    context = _load_context(request.context)
    context_dict = context.to_dict() if context is not None else {}
    conditions, raw_conditions = _operating_conditions(request.context)
    if raw_conditions is not None:  # FM17's results depend on them: a changed section is a new scan
        # As text: YAML may mix int and str keys, which the fingerprint's sorted dump refuses.
        context_dict = {**context_dict, "operating_conditions": json.dumps(raw_conditions, default=str)}
    out = Path(out_dir) if out_dir is not None else None
    target_config = request.target_config
    if isinstance(target_config, (str, Path)):  # a bad config file is refused before any work
        from ..targets.config import load_target_config

        target_config = load_target_config(target_config)
    defences = policy = None
    refusals: dict[str, int] = {}  # by check id: requests the in-process defences refused
    if request.defend is not None:  # a bad policy is refused before any work, too
        from .defended import policy_defences

        defences, policy = policy_defences(request.defend)
    data = _resolve_data(request.data, request.target)
    from ..checks.agents.selection import fit_checks_to_data, require_matching_target

    checks, instances = fit_checks_to_data(request.select, checks, instances, data, request.target)  # agents or not
    raw_target_spec = _describe_target_arg(request.target)
    _require_something_to_run(request, checks, data, redact_url(raw_target_spec))
    # After every argument is known to be good: --force must not clear a folder for a scan
    # that is then refused.
    if out is not None:
        held.callback(prepare_out_dir(out, resume=resume, force=force).release)
    retest = _retest_info(request, checks)
    data_spec = (data.spec or data.name) if data is not None else ""
    # What the local files the scan reads hold now: a resume over changed files is refused.
    # (Only a scan that writes its events has a fingerprint to compare: no hashing otherwise.)
    inputs = scan_inputs(request, raw_target_spec, data_spec, target_config) if out is not None else {}
    # The fingerprint tells endpoints apart by their full URL; the log and reports record the
    # URL with its query values and user info redacted (they may hold keys).
    fingerprint = request.fingerprint(raw_target_spec, data_spec, context_dict, inputs=inputs)
    target_spec = redact_url(raw_target_spec)
    # Finding ids do too: two URLs recorded alike (differing in a query value) are two targets.
    digest = target_digest(raw_target_spec)

    log = EventLog(out / EVENTS_FILE) if out is not None else None
    previous: dict[str, dict[str, Any]] = {}
    started_at = now_iso()
    if log is not None:
        if resume:
            plain = request.fingerprint(raw_target_spec, data_spec, context_dict, inputs={}) if inputs else None
            previous, first_start = finished_findings(log, fingerprint, inputs, without_inputs=plain)
            started_at = first_start or started_at
        else:
            log.reset()
        log.append("scan_started", fingerprint=fingerprint, target=target_spec, data=data_spec,
                   select=request.select, budget=request.budget, seed=request.seed, resume=resume,
                   **({"inputs": inputs} if inputs else {}))

    findings: list[Finding] = []
    pre = _static_scan_findings(request.target, previous, deployment_context(context, None))
    findings.extend(pre)
    for f in pre:
        if log is not None and f.id not in previous:
            log.append("check_finished", check=f.check, finding=f.to_dict())
        if on_finding is not None and f.id not in previous:
            on_finding(f, target_spec, data_spec)
    if any(f.status is Status.VULNERABLE or f.status is Status.ERROR for f in pre):
        # An unsafe or unparseable model file is never loaded; report what the scanner found.
        target_desc = {"spec": target_spec, "capabilities": None}
        data_desc = {"spec": data_spec}
        applied = deployment_context(context, None)
        return _finish(findings, applied, target_desc, data_desc, started_at, out, formats, log, retest,
                       added=unselected_checks(request.select, pre))

    if _is_model_file(request.target):  # the file's static scan ran; the checks may still lack data
        _require_data(checks, data, target_spec)
    loaded = load_target(request.target, data=data, config=target_config)
    require_matching_target(loaded, data)
    # The attacks query the model as the deployment exposes it (labels only, rounded).
    target = as_deployed(loaded, context)
    baseline = None  # the bare model, when the scan compares it with the defended one
    if defences is not None:
        from .defended import scanned

        baseline, target = target, scanned(target, defences)
    elif getattr(target_config, "baseline", None):
        from .defended import load_baseline

        baseline = load_baseline(target_config.baseline, data)
    defended_section = None
    interrupted = False
    try:
        data_desc = data.describe() if data is not None else {"spec": ""}
        from ..findings import finding_id
        from ..triage.engine import apply as triage

        # overall progress and ETA across the checks (twice as many with a baseline to compare)
        progress.expect(len(instances) * (1 if baseline is None else 2))
        for index, check in enumerate(instances, start=1):
            budget = request.budget_for(check)
            fid = finding_id(check.id, target.spec, check.get_params(), request.seed, budget, digest)
            if fid in previous:
                findings.append(Finding.from_dict(previous[fid]))
                progress.skip()
                continue
            progress.start(check.id, index, len(checks))
            if log is not None:
                log.append("check_started", check=check.id, id=fid)
            ctx = CheckContext(out, progress.update, operating_conditions=conditions, earlier=tuple(findings),
                               target_digest=digest)
            finding = check(target, data, budget=budget, seed=request.seed, ctx=ctx)
            if digest:  # so a replay (of the report, or of a registry case made from it) can check the id
                finding.evidence["target_digest"] = digest
            if defences is not None:
                refusals[check.id] = target.take_refusals()
                if policy is not None:  # so a registry case made from it replays behind the same defences
                    from .defended import defended_by

                    finding.evidence["defended_by"] = defended_by(policy, baseline.spec)
            if request.notes and check.id in request.notes:
                finding.summary = f"{finding.summary} {request.notes[check.id]}".strip()
            applied = deployment_context(context, target)
            note_rate_limit(finding, applied)
            triage([finding], applied)
            _remediate([finding], applied, retest)
            findings.append(finding)
            if log is not None:
                log.append("check_finished", check=check.id, finding=finding.to_dict())
            if on_finding is not None:
                on_finding(finding, target.spec, data_spec)
            progress.finish(_outcome_text(finding))
        if baseline is not None:
            from .defended import comparison, run_baseline

            bare = run_baseline(instances, baseline, data, request, context, progress, _outcome_text)
            defended_section = comparison(bare, [f for f in findings if f.check in {c.id for c in instances}],
                                          policy=policy, defences=getattr(target, "defences", []),
                                          baseline_spec=baseline.spec, defended_spec=target.spec,
                                          refusals=refusals)
    except KeyboardInterrupt:
        # Keep what finished: the report is written below, marked incomplete.
        interrupted = True
        progress.finish("interrupted")
    except OutputError:
        progress.finish("stopped: an output file could not be written")
        raise
    finally:
        loaded.close()
        if baseline is not None and baseline is not loaded and defences is None:
            baseline.close()
    # Described after the checks: a remote target reveals what it returns only when it answers.
    target_desc = {"spec": target.spec, "capabilities": target.capabilities.to_dict(), "n_classes": target.n_classes}
    applied = deployment_context(context, target)
    pending = [c.id for c in checks if c.id not in {f.check for f in findings}] if interrupted else None
    report = _finish(findings, applied, target_desc, data_desc, started_at, out, formats, log, retest, pending,
                     defences=defended_section, added=unselected_checks(request.select, pre))
    if interrupted:
        raise ScanInterrupted(report)
    return report


def _check_per_check_settings(request: ScanRequest, instances: list) -> None:
    """Budgets and notes by check id must name selected checks, budgets be whole numbers >= 0,
    and the seed one the random generators of the checks take (as --seed checks it)."""
    import numbers

    from .commands import MAX_SEED

    seed = request.seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise UsageError(f"the seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    selected = {c.id for c in instances}
    for label, table in (("budget", request.budgets), ("note", request.notes)):
        for check_id in table or {}:
            if check_id not in selected:
                raise UsageError(f"a {label} is given for {check_id}, which this scan does not run")
    for check_id, value in (request.budgets or {}).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"the budget of {check_id} must be a whole number of queries >= 0, not {value!r}")


def _outcome_text(f: Finding) -> str:
    if f.status is Status.VULNERABLE:
        return f"vulnerable ({f.severity.label})"
    if f.reason:
        return f"{f.status.value}: {f.reason}"
    return f.status.value


def _static_scan_findings(target: Any, previous: dict[str, dict[str, Any]], context) -> list[Finding]:
    """FM09: a model file named on the command line is statically scanned before loading; its
    finding is rated by triage at once, as a check's finding is."""
    if not isinstance(target, (str, Path)):
        return []
    from ..targets.adapters import model_file_path

    text = str(target)
    path = model_file_path(text)
    if path is None:
        return []
    if not path.exists():
        return []  # load_target reports the missing file
    from ..filescan.findings import static_scan_finding
    from ..triage.engine import apply as triage

    finding = static_scan_finding(path, target_spec=text)
    if finding.id in previous:
        return [Finding.from_dict(previous[finding.id])]
    return triage([finding], context)


def unselected_checks(select: Any, static: list[Finding]) -> list[str]:
    """The checks of ``static`` (the static scan of a model file) that the selection did not
    ask for: all of them under a ``--select`` without FM09, none for a full scan (no
    ``--select``: FM09 is part of it) or a selection naming FM09."""
    from ..checks import STATIC_SCAN_MODE, selection_names

    if select is None:
        return []
    named = selection_names(select)
    if STATIC_SCAN_MODE in named["modes"] or any(c.startswith(f"{STATIC_SCAN_MODE}.") for c in named["checks"]):
        return []
    return sorted({f.check for f in static})


def _retest_info(request: ScanRequest, checks: list) -> dict[str, Any]:
    """What a remediation's re-test command needs: the scan's own arguments, per check budget."""
    as_text = lambda v: str(v) if isinstance(v, (str, Path)) else None  # noqa: E731
    return {
        "target": redact_url(as_text(request.target)) if as_text(request.target) else None,  # no keys in commands
        "data": as_text(request.data),
        "context": as_text(request.context),
        "target_config": as_text(request.target_config),
        "seed": request.seed,
        "budgets": {c.id: request.budget_for(c) for c in checks},
    }


def _remediate(findings: list[Finding], context, retest: dict[str, Any]) -> None:
    from ..triage.remediation import remediate

    for f in findings:
        if not f.remediation:
            remediate(f, context, retest)


def _finish(findings, context, target_desc, data_desc, started_at, out, formats, log, retest,
            pending: list[str] | None = None, defences: dict[str, Any] | None = None,
            added: list[str] | None = None) -> Report:
    from ..triage.engine import apply as triage

    triage([f for f in findings if not f.rationale], context)
    _remediate(findings, context, retest)
    report = Report(
        target=target_desc,
        data=data_desc,
        started_at=started_at,
        finished_at=now_iso(),
        findings=findings,
        coverage=coverage_of(findings),
        context=context.to_dict(),
        context_assumed=list(context.assumed),
        out_dir=str(out) if out is not None else None,
        complete=pending is None,
        pending_checks=list(pending or []),
        defences=defences,
        added_checks=list(added or []),
    )
    if out is not None:
        from ..report.writers import write_all

        write_all(report, out, list(formats) if formats else ["json", "html"])
        if log is not None:
            if pending is None:
                log.append("scan_finished", findings=len(findings), worst=report.worst_severity.label)
            else:
                log.append("scan_interrupted", findings=len(findings), pending=pending)
    return report
