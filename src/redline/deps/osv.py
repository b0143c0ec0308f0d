"""Sources of OSV advisories: an offline export (zip or folder of JSON) or the online OSV API.

Both answer one question, ``lookup(packages) -> {name: [records that affect it]}``, so the
audit does not care where the data came from. The export is matched locally; the API does
its own matching and redline fetches the full records of what it reports.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import DataError, UsageError
from .matching import ECOSYSTEM, affects, normalize, package_entries

DEFAULT_API_URL = "https://api.osv.dev"
API_URL_ENV = "REDLINE_OSV_URL"
# One entry of the real PyPI export is a few kB; anything this large is not an advisory.
_MAX_ENTRY_BYTES = 32 << 20
_BATCH = 1000  # the API's limit on queries per querybatch call
_MAX_PAGES = 50


class AdvisorySource(Protocol):
    def lookup(self, packages: dict[str, str]) -> dict[str, list[dict[str, Any]]]: ...


class OsvDatabase:
    """OSV records held in memory, indexed by normalised PyPI package name."""

    def __init__(self, records: Iterable[dict[str, Any]], source: str = "memory") -> None:
        self.source = source
        self.records = 0
        self._by_package: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            self.records += 1
            names = set()
            for entry in record.get("affected") or []:
                package = entry.get("package") if isinstance(entry, dict) else None
                if (
                    isinstance(package, dict)
                    and package.get("ecosystem") == ECOSYSTEM
                    and isinstance(package.get("name"), str)
                ):
                    names.add(normalize(package["name"]))
            for name in names:
                self._by_package.setdefault(name, []).append(record)

    @classmethod
    def load(cls, path: str | os.PathLike) -> OsvDatabase:
        """Read an OSV export: a zip (like PyPI ``all.zip``), a folder of JSON files, or one JSON file."""
        p = Path(path)
        if p.is_dir():
            return cls(_records_from_folder(p), str(p))
        if not p.is_file():
            raise UsageError(f"--osv-db {p}: no such file or directory")
        if zipfile.is_zipfile(p):
            return cls(_records_from_zip(p), str(p))
        if p.suffix.lower() == ".json":
            return cls(_records_from_json(p.read_bytes(), str(p)), str(p))
        raise UsageError(f"--osv-db {p}: expected an OSV export (.zip), a JSON file or a folder of JSON files")

    def lookup(self, packages: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for raw_name, version in packages.items():
            name = normalize(raw_name)
            hits = [r for r in self._by_package.get(name, []) if affects(r, name, version)]
            if hits:
                found[name] = hits
        return found


def _records_from_zip(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.lower().endswith(".json"):
                    continue
                if info.file_size > _MAX_ENTRY_BYTES:
                    raise DataError(f"{path}: entry {info.filename} is too large for an OSV advisory")
                yield from _records_from_json(archive.read(info), f"{path}:{info.filename}")
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: damaged zip file ({exc})") from None


def _records_from_folder(folder: Path) -> Iterator[dict[str, Any]]:
    for file in sorted(folder.rglob("*.json")):
        if file.is_file():
            yield from _records_from_json(file.read_bytes(), str(file))


def _records_from_json(data: bytes, where: str) -> list[dict[str, Any]]:
    # A damaged entry is an error, not a skip: silently dropping it could hide a vulnerability.
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{where}: not valid JSON ({exc})") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in items):
        raise DataError(f"{where}: not an OSV advisory (needs an object with an 'id')")
    return items


class OsvApi:
    """The OSV web API: ``POST /v1/querybatch`` for matches, ``GET /v1/vulns/{id}`` for the records."""

    def __init__(self, base_url: str | None = None, timeout: float = 5.0) -> None:
        url = (base_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise UsageError(f"OSV API URL must be http(s): {url!r} (from ${API_URL_ENV}?)")
        self.base_url = url
        self.timeout = timeout
        self.source = url

    def lookup(self, packages: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        names = [normalize(n) for n in packages]
        versions = list(packages.values())
        ids_per_package: dict[str, list[str]] = {}
        for start in range(0, len(names), _BATCH):
            queries = [
                {"package": {"name": n, "ecosystem": ECOSYSTEM}, "version": v}
                for n, v in zip(names[start : start + _BATCH], versions[start : start + _BATCH])
            ]
            for name, ids in zip(names[start : start + _BATCH], self._query_batch(queries)):
                if ids:
                    ids_per_package[name] = ids
        cache: dict[str, dict[str, Any]] = {}
        found: dict[str, list[dict[str, Any]]] = {}
        for name, ids in ids_per_package.items():
            records = []
            for vuln_id in ids:
                if vuln_id not in cache:
                    cache[vuln_id] = self._get(f"/v1/vulns/{urllib.parse.quote(vuln_id, safe='')}")
                record = cache[vuln_id]
                if not record.get("withdrawn") and package_entries(record, name):
                    records.append(record)
            if records:
                found[name] = records
        return found

    def _query_batch(self, queries: list[dict[str, Any]]) -> list[list[str]]:
        answer = self._post("/v1/querybatch", {"queries": queries})
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(queries):
            raise DataError("OSV API: querybatch answered with the wrong number of results")
        ids: list[list[str]] = []
        for query, result in zip(queries, results):
            found = _ids(result)
            token, pages = (result or {}).get("next_page_token"), 0
            while token and pages < _MAX_PAGES:  # one package with very many advisories
                page = self._post("/v1/querybatch", {"queries": [{**query, "page_token": token}]})
                more = (page.get("results") or [{}])[0] or {}
                found += _ids(more)
                token, pages = more.get("next_page_token"), pages + 1
            ids.append(list(dict.fromkeys(found)))
        return ids

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path, data=data, headers={"Content-Type": "application/json"}, method="POST"
        )
        return self._send(request)

    def _get(self, path: str) -> dict[str, Any]:
        return self._send(urllib.request.Request(self.base_url + path, method="GET"))

    def _send(self, request: urllib.request.Request) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise DataError(f"OSV API at {self.base_url} answered HTTP {exc.code} for {request.full_url}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(
                f"OSV API unreachable at {self.base_url} ({reason}): use --osv-db FILE with an OSV export"
            ) from None
        try:
            answer = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DataError(f"OSV API at {self.base_url} sent a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise DataError(f"OSV API at {self.base_url} sent an unexpected answer")
        return answer


def _ids(result: Any) -> list[str]:
    vulns = result.get("vulns") if isinstance(result, dict) else None
    return [v["id"] for v in vulns or [] if isinstance(v, dict) and isinstance(v.get("id"), str)]
