"""Inputs for the before/after comparison of FM09 and ``redline deps`` ratings (issue 13).

Each case goes through the public paths only (``deps.audit``/``deps.to_findings`` and
``pipeline.run_scan`` of a model file), so the same builders ran against the code before
FM09 and deps were rated by triage (the recorded ``rating_before.json``) and run now.
"""
from __future__ import annotations

import itertools
import pickle
from pathlib import Path

CVSS = {
    "9.8": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "9.0": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:H/A:L",
    "7.5": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
    "6.5": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:N/I:H/A:N",
    "4.3": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N",
    "3.1": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N",
    "0.0": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N",
    "bad": "CVSS:3.1/AV:N/garbage",
    "v4": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
}
LABELS = (None, "CRITICAL", "HIGH", "MODERATE", "MEDIUM", "LOW", "low", "UNKNOWN")
TEXTS = {
    "none": {},
    "rce": {"summary": "Remote code execution in the loader"},
    "deser": {"details": "Deserialization of untrusted data in load() can execute commands."},
    "dos": {"summary": "Denial of service through a long header"},
    "arbitrary_read": {"details": "Arbitrary file read from the resources folder."},
}


def _record(rid: str, package: str, cvss: str | None, label: str | None, text: str, per_package: bool = False):
    affected = {"package": {"ecosystem": "PyPI", "name": package}, "versions": ["1.0"]}
    record = {"id": rid, **TEXTS[text]}
    if cvss is not None:
        entry = [{"type": "CVSS_V3" if cvss != "v4" else "CVSS_V4", "score": CVSS[cvss]}]
        if per_package:
            affected["severity"] = entry
        else:
            record["severity"] = entry
    if label is not None:
        record["database_specific"] = {"severity": label}
    record["affected"] = [affected]
    return record


def deps_records() -> list[dict]:
    """One package per combination of evidence; a few packages with several alias records."""
    records = []
    combos = itertools.product((None, "9.8", "9.0", "7.5", "6.5", "4.3", "3.1", "0.0", "bad", "v4"), LABELS, TEXTS)
    for n, (cvss, label, text) in enumerate(combos):
        prefix = "MAL" if n % 37 == 5 else "GHSA"
        records.append(_record(f"{prefix}-case-{n:04d}", f"pkg{n:04d}", cvss, label, text, per_package=n % 3 == 0))
    # Alias groups: the strongest evidence of any record counts.
    groups = [
        [("6.5", "CRITICAL", "none"), ("7.5", None, "none")],
        [(None, "LOW", "none"), (None, "HIGH", "none")],
        [(None, "UNKNOWN", "none"), (None, "LOW", "none")],
        [("3.1", None, "none"), (None, "CRITICAL", "rce")],
        [(None, None, "none"), (None, None, "dos")],
        [("bad", "MEDIUM", "none"), ("v4", None, "none")],
    ]
    for g, members in enumerate(groups):
        ids = [f"GHSA-group-{g}-{i}" for i in range(len(members))]
        for i, (cvss, label, text) in enumerate(members):
            record = _record(ids[i], f"group{g}", cvss, label, text)
            record["aliases"] = [f"CVE-2099-{g:04d}"]
            records.append(record)
    return records


def deps_severities() -> dict[str, str]:
    """Severity of every vulnerability, and of the FM11.deps finding over several subsets."""
    from redline.deps import OsvDatabase, audit, to_findings

    records = deps_records()
    packages = sorted({r["affected"][0]["package"]["name"] for r in records})
    vulns = audit({name: "1.0" for name in packages}, OsvDatabase(records))
    out = {f"deps:{v.package}:{v.id}": v.severity.label for v in vulns}
    by_package = {v.package: v for v in vulns}
    subsets = {"all": vulns, "none": []}
    names = sorted(by_package)
    for size in (2, 3):
        for start in range(0, len(names) - size, 7):
            chosen = names[start:start + size]
            subsets["+".join(chosen)] = [by_package[n] for n in chosen]
    for key, chosen in subsets.items():
        (finding,) = to_findings(chosen, packages_checked=len(chosen))
        out[f"deps-finding:{key}"] = f"{finding.status.value}/{finding.severity.label}"
    return out


class _Runs:
    """Unpickling this would run a shell command (it is never unpickled here)."""

    def __reduce__(self):
        import os

        return (os.system, ("echo never",))


def _write_model_files(folder: Path) -> dict[str, Path]:
    from filescan_asm import PROTO, REDUCE, STOP, TUPLE1, glob, sstr

    files = {
        "os_system": PROTO(2) + glob("os", "system") + sstr("echo hi") + TUPLE1 + REDUCE + STOP,
        "unknown_callable": PROTO(2) + glob("somepkg.module", "helper") + sstr("x") + TUPLE1 + REDUCE + STOP,
        "builtins_eval": PROTO(2) + glob("builtins", "eval") + sstr("1+1") + TUPLE1 + REDUCE + STOP,
        "reduce_pickle": pickle.dumps(_Runs(), protocol=4),
        "plain_data": pickle.dumps({"weights": [0.5, 1.5], "classes": [0, 1]}, protocol=4),
    }
    paths = {}
    for name, data in files.items():
        path = folder / f"{name}.pkl"
        path.write_bytes(data)
        paths[name] = path
    return paths


def fm09_ratings(folder: Path) -> dict[str, str]:
    """status/severity/rationale of the FM09 finding of ``redline scan`` on each model file."""
    from redline.filescan.findings import static_scan_finding
    from redline.pipeline.runner import ScanRequest, run_scan
    from redline.triage import rate

    out = {}
    for name, path in _write_model_files(folder).items():
        # The finding the scanner produces, rated on the bug bar with no deployment facts.
        finding = static_scan_finding(path, target_spec=str(path))
        severity, rationale = rate(finding)
        out[f"fm09-finding:{name}"] = f"{finding.status.value}/{severity.label}/{rationale}"
        if name == "plain_data":
            continue  # a safe pickle goes on to be loaded, which redline refuses for pickles
        for context in (None, {"internet_exposed": False, "safety_critical": True}):
            report = run_scan(ScanRequest(target=str(path), select="FM09", context=context))
            (finding,) = [f for f in report.findings if f.mode == "FM09"]
            key = f"fm09:{name}:{'context' if context else 'default'}"
            out[key] = f"{finding.status.value}/{finding.severity.label}/{finding.rationale}"
    return out
