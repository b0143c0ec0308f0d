"""The registry's web pages (FastAPI, server-rendered with Jinja2 in the report's look).

Pages: the dashboard (``/``), search (``/search``), a case (``/cases/{id}``), the incident
form (``/submit``), sign-in for protected reads (``/login``); JSON for the same reads at
``/api/cases`` and ``/api/cases/{id}``, and ``POST /api/incidents`` for scripts.

Everything shown is escaped (Jinja2's autoescape, after control and bidi characters are
made visible as in the reports), and pages run no script: the report's
Content-Security-Policy is sent as a header and repeated in the page.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ...catalog import MODE_CODES
from ...errors import DataError, RedlineError, UsageError
from ...report.formatting import (
    SEVERITY_SCALE,
    data_series_note,
    format_value,
    parse_time,
)
from ...report.html import raster_image_type
from ...report.modes import mode_name
from ...report.theme import CSP, badge, e, pill, severity_class, stylesheet
from ...severity import Severity
from ...util.safe_text import document_text
from ...version import __version__
from ..case import CaseStatus
from ..reproduce import replay_command, scan_command
from .auth import READ_COOKIE, TokenRules, bearer
from .charts import timeline_svg
from .store import CaseStore, Filters
from .submit import FACT_CHOICES, FACT_LISTS, IncidentForm, fact_choices

__all__ = ["create_app"]

PER_PAGE = 20
MAX_PER_PAGE = 200
MAX_PAGE = 10**9  # far past any registry's last page; a larger one would overflow the database's 64-bit offset
MAX_DEPTH = 64  # nesting of an incident sent as JSON (the YAML loader's bound for `redline triage`)
MAX_FORM_BYTES = 256 * 1024
NAV = (("/", "Dashboard"), ("/search", "Search"), ("/submit", "Submit an incident"))
# Case statuses in the status palette the report uses for finding statuses.
STATUS_TONE = {"open": "vulnerable", "regressed": "error", "fixed": "not_vulnerable", "wont-fix": "not_applicable"}
STATUS_LABEL = {"open": "Open", "regressed": "Regressed", "fixed": "Fixed", "wont-fix": "Won't fix"}
_HEADERS = {
    "Content-Security-Policy": CSP + "; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _finalize(value: Any) -> Any:
    """Every value a template prints: markup we built passes, anything else becomes text
    with control and bidi characters shown as escapes (autoescape then escapes it)."""
    if isinstance(value, Markup):
        return value
    return "" if value is None else document_text(value)


def _environment() -> Environment:
    env = Environment(loader=PackageLoader(__package__, "templates"), autoescape=select_autoescape(["html"]),
                      finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(
        modes=MODE_CODES,
        severities=SEVERITY_SCALE,
        statuses=tuple(CaseStatus),
        mode_name=mode_name,
        badge=lambda sev: Markup(badge(sev)),
        badge_of=lambda label: Markup(badge(_severity(label))),
        sev_class=severity_class,
        status_label=lambda value: STATUS_LABEL.get(value, value),
        status_pill=_status_pill,
        kv=_kv,
        when=_when,
        event_text=_event_text,
        fmt=format_value,
        nav=NAV,
        version=__version__,
        csp=CSP,
        stylesheet=Markup(stylesheet() + "\n" + (_templates_text("web.css"))),
    )
    return env


def _templates_text(name: str) -> str:
    from importlib import resources

    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def _severity(label: Any) -> Severity:
    try:
        return Severity.parse(label)
    except ValueError:
        return Severity.NONE


def _status_pill(status: Any) -> Markup:
    value = status.value if isinstance(status, CaseStatus) else str(status)
    return Markup(pill("st", STATUS_TONE.get(value, "not_applicable"), STATUS_LABEL.get(value, value)))


def _kv(mapping: dict[str, Any]) -> Markup:
    """A name/value table; raw plot data (long number series) is named, not dumped, as in the report."""
    rows = []
    for key, value in mapping.items():
        note = data_series_note(value)
        cell = f'<td class="muted">{e(note)}</td>' if note else f"<td>{e(format_value(value, 600))}</td>"
        rows.append(f"<tr><th>{e(key)}</th>{cell}</tr>")
    return Markup(f'<table class="kv">{"".join(rows)}</table>')


def _when(value: Any) -> str:
    """``2026-12-06 22:30 UTC`` for a stored ISO time; other text as it is."""
    moment = parse_time(str(value or ""))
    if moment is None:
        return str(value or "")
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


def _event_text(event: Any) -> str:
    """One case event in words: ``status open -> fixed (note)``, ``replay fixed on TARGET``..."""
    d = event.details
    if event.event == "status":
        words = f"status {d.get('from', '?')} -> {d.get('to', '?')}" + (f" ({d['note']})" if d.get("note") else "")
    elif event.event == "replay":
        words = f"replay {d.get('outcome', '')}" + (f" on {d['target']}" if d.get("target") else "")
    elif event.event == "linked":
        words = f"linked to case {d.get('case', '?')} ({d.get('relation', 'related')})"
    else:
        rest = ", ".join(f"{k} {format_value(v, 120)}" for k, v in d.items())
        words = event.event + (f": {rest}" if rest else "")
    return words + (f", by {event.by}" if event.by else "")


def _remediation(text: str) -> tuple[list[str], str]:
    """(advice lines, re-test command) of a case's remediation text (as triage writes it)."""
    from ...triage.remediation import RETEST_PREFIX

    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    retest = next((line[len(RETEST_PREFIX):] for line in lines if line.startswith(RETEST_PREFIX)), "")
    return [line for line in lines if not line.startswith(RETEST_PREFIX)], retest


def _image_uri(data: bytes) -> str | None:
    mime = raster_image_type(data)  # by signature: a stored media type is only what a writer claimed
    return None if mime is None else f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def create_app(registry: Any, *, write_token: str | Sequence[str], read_token: str | None = None) -> FastAPI:
    """The web app over ``registry`` (a ``Registry`` or a :class:`CaseStore`).

    ``write_token`` (one, or a list of tokens each allowed to write) is required for every
    write; with ``read_token`` set, reads need it (or a write token) too, otherwise reads
    are open.
    """
    writers = [write_token] if isinstance(write_token, str) else list(write_token or [])
    if not writers or not all(isinstance(t, str) and t.strip() for t in writers):
        raise UsageError("the registry's web pages need a write token (it guards every write)")
    if read_token is not None and (not isinstance(read_token, str) or not read_token.strip()):
        raise UsageError("a read token, when given, must be a non-empty string")
    store = registry if isinstance(registry, CaseStore) else CaseStore(registry)
    rules = TokenRules([t.strip() for t in writers], read_token)
    env = _environment()
    app = FastAPI(title="redline failure-case registry", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(RedlineError)
    async def one_line_error(request: Request, exc: RedlineError):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "bad request", "reason": str(exc)}, status_code=400)
        return html("message.html", request, 400, title="Bad request", message=str(exc))

    def html(name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
        text = env.get_template(name).render(here=request.url.path, **values)
        return HTMLResponse(text, status_code=status)

    def reader_ok(request: Request) -> bool:
        return rules.may_read(bearer(request.headers.get("authorization")), request.cookies.get(READ_COOKIE))

    def refuse_read(request: Request, api: bool) -> Response:
        if api:
            return JSONResponse({"error": "unauthorized", "reason": "reads need a token (Authorization: Bearer)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return html("message.html", request, 401, title="Sign in", message="Reading this registry needs a token.",
                    sign_in=True, next_url=_local_path(str(request.url.path)))

    # -- reads -----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def dashboard(request: Request):
        if not reader_ok(request):
            return refuse_read(request, api=False)
        overview = store.overview()
        return html("dashboard.html", request, title="Dashboard", heading="Failure cases", overview=overview,
                    timeline=Markup(timeline_svg(overview.months)))

    @app.get("/search", response_class=HTMLResponse)
    def search(request: Request, q: str = "", mode: str = "", severity: str = "", system: str = "", status: str = "",
               page: int = 1):
        if not reader_ok(request):
            return refuse_read(request, api=False)
        try:
            filters = _filters(q, mode, severity, system, status)
            page = _page_number(page)
        except UsageError as exc:
            return html("message.html", request, 400, title="Search", message=str(exc))
        result = store.search(filters, page, PER_PAGE)

        def page_link(number: int) -> str:
            return "/search?" + urlencode({**filters.as_query(), "page": number})

        return html("search.html", request, title="Search", heading="Search the cases", filters=filters,
                    page=result, page_link=page_link)

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    def case_page(request: Request, case_id: str):
        if not reader_ok(request):
            return refuse_read(request, api=False)
        case = store.get(case_id)
        if case is None:
            return html("message.html", request, 404, title="Not found", message=f"No case {case_id}.")
        plots = []
        for name, digest in (case.artifacts or {}).items():
            data = store.artifact(digest)
            uri = _image_uri(data) if data else None
            if uri:
                plots.append((name, Markup(uri)))
        run = {"check": case.check or "–", "target": case.target or "–", "data": case.data or "–",
               "seed": case.seed, "budget": case.budget, "finding id": case.finding_id or "–"}
        links = [
            {"relation": link.relation, "label": f"{link.kind} {link.id}: {link.label}".rstrip(": "),
             "href": f"/cases/{link.id}" if link.kind == "case" else ""}
            for link in store.links(case_id)
        ]
        advice, retest = _remediation(case.remediation)
        return html("case.html", request, title=case.title, heading=case.title, case=case, run=run, plots=plots,
                    replay=replay_command(case), scan=scan_command(case), history=store.replays(case_id),
                    events=store.events(case_id), links=links, remediation=advice, retest=retest)

    @app.get("/api/cases")
    def api_cases(request: Request, q: str = "", mode: str = "", severity: str = "", system: str = "",
                  status: str = "", page: int = 1, per_page: int = PER_PAGE):
        if not reader_ok(request):
            return refuse_read(request, api=True)
        try:
            filters = _filters(q, mode, severity, system, status)
            page = _page_number(page)
        except UsageError as exc:
            return JSONResponse({"error": "bad request", "reason": str(exc)}, status_code=400)
        result = store.search(filters, page, min(max(1, per_page), MAX_PER_PAGE))
        return {"total": result.total, "page": result.number, "per_page": result.per_page, "pages": result.pages,
                "cases": [c.to_dict() for c in result.cases]}

    @app.get("/api/cases/{case_id}")
    def api_case(request: Request, case_id: str):
        if not reader_ok(request):
            return refuse_read(request, api=True)
        case = store.get(case_id)
        if case is None:
            return JSONResponse({"error": "not found", "reason": f"no case {case_id}"}, status_code=404)
        return {**case.to_dict(), "replay_command": replay_command(case), "scan_command": scan_command(case),
                "replays": [r.__dict__ for r in store.replays(case_id)],
                "events": [ev.__dict__ for ev in store.events(case_id)],
                "links": [link.__dict__ for link in store.links(case_id)]}

    # -- sign-in for protected reads --------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/"):
        return html("message.html", request, title="Sign in", message="Give a read or write token to browse.",
                    sign_in=True, next_url=_local_path(next))

    @app.post("/login")
    async def login(request: Request):
        form = await _read_form(request)
        token = str(form.get("token") or "")
        if not (rules.may_read(token) and (rules.reads_open or token)):
            return html("message.html", request, 401, title="Sign in", message="That token is not valid here.",
                        sign_in=True, next_url=_local_path(str(form.get("next") or "/")))
        response = RedirectResponse(_local_path(str(form.get("next") or "/")), status_code=303)
        if not rules.reads_open:
            response.set_cookie(READ_COOKIE, rules.cookie_value(), httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path="/")
        return response

    # -- writes -----------------------------------------------------------------------------

    @app.get("/submit", response_class=HTMLResponse)
    def submit_form(request: Request):
        if not reader_ok(request):
            return refuse_read(request, api=False)
        return _form_page(request, IncidentForm.empty())

    def _form_page(request: Request, form: IncidentForm, error: str = "", status: int = 200) -> HTMLResponse:
        return html("submit.html", request, status, title="Submit an incident", form=form, error=error,
                    choices=fact_choices(), fact_choices_single=FACT_CHOICES, fact_lists=FACT_LISTS)

    @app.post("/submit", response_class=HTMLResponse)
    async def submit(request: Request):
        raw = await _read_form(request)
        form = IncidentForm.from_form(raw)
        token = bearer(request.headers.get("authorization")) or str(raw.get("token") or "")
        if not rules.may_write(token):
            return _form_page(request, form, "A valid write token is needed to record an incident.", 401)
        try:
            incident, result = await run_in_threadpool(form.triage)
            incident_id, case_id = await run_in_threadpool(
                store.add_incident, incident, added_by=str(incident.get("reporter") or "web form"))
        except RedlineError as exc:
            return _form_page(request, form, str(exc), 422)
        return html("triaged.html", request, 201, title="Incident triaged", heading=result.incident.title,
                    severity=result.severity, primary=result.primary, rationale=result.rationale,
                    matches=result.matches, playbook=result.playbook, case_id=case_id, incident_id=incident_id)

    # The writes are async only to read the body; triage and the store (which may wait for
    # another writer's transaction) run in the thread pool so the server keeps answering.
    @app.post("/api/incidents")
    async def api_incident(request: Request):
        if not rules.may_write(bearer(request.headers.get("authorization"))):
            return JSONResponse({"error": "unauthorized", "reason": "writes need the write token (Authorization: Bearer)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        body = await request.body()
        try:
            if len(body) > MAX_FORM_BYTES:
                raise UsageError(f"the incident is larger than {MAX_FORM_BYTES} bytes")
            try:
                doc = json.loads(body)
            except RecursionError:
                raise UsageError(f"the incident is nested more than {MAX_DEPTH} levels deep") from None
            except ValueError:
                raise UsageError("the body must be an incident as JSON (redline.incident/1)") from None
            from ..exchange.files import check_shape

            try:  # before triage, which reads the document recursively
                check_shape(doc, "the incident", MAX_DEPTH)
            except DataError as exc:
                raise UsageError(str(exc)) from None
            from ...threatmodel.triage import triage_incident

            result = await run_in_threadpool(triage_incident, doc)
            incident_id, case_id = await run_in_threadpool(
                store.add_incident, dict(result.incident.raw), added_by=str(doc.get("reporter") or "api"))
        except RedlineError as exc:
            return JSONResponse({"error": "bad request", "reason": str(exc)}, status_code=422)
        return JSONResponse({"incident": incident_id, "case": case_id, "severity": result.severity.label,
                             "primary": result.primary.code if result.primary else None,
                             "rationale": result.rationale}, status_code=201)

    return app


async def _read_form(request: Request) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise UsageError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    return await request.form()


def _page_number(page: int) -> int:
    """A search page number: below 1 reads as the first page; past MAX_PAGE is a usage error."""
    if page > MAX_PAGE:
        raise UsageError(f"page must be at most {MAX_PAGE:,}")
    return max(1, page)


def _filters(q: str, mode: str, severity: str, system: str, status: str) -> Filters:
    mode = mode.strip().upper()
    if mode and mode not in MODE_CODES:
        raise UsageError(f"unknown mode {mode!r}; choose from FM01..FM17")
    if severity.strip():
        try:
            severity = Severity.parse(severity).label
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    status = status.strip().lower()
    if status and status not in STATUS_TONE:
        raise UsageError(f"unknown status {status!r}; choose from {', '.join(STATUS_TONE)}")
    return Filters(q=q.strip()[:500], mode=mode, severity=severity.strip(), system=system.strip()[:200], status=status)


def _local_path(value: str) -> str:
    """Only a path on this site may be a redirect target (no open redirect to elsewhere)."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or any(c in value for c in "\r\n"):
        return "/"
    return value
