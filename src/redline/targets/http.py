"""A model behind an HTTP JSON endpoint, using only the standard library.

Default protocol: ``POST URL`` with ``{"inputs": [...]}`` (a batch as nested lists),
answered by ``{"probabilities": [[...], ...]}`` or ``{"labels": [...]}``. A
:class:`~redline.targets.config.TargetConfig` can rename the keys (dotted paths reach into
nested JSON), add headers and auth, and set timeouts, retries, back-off, a rate limit and
the largest batch per request. Whether the endpoint answers probabilities or labels is
read from its first answer unless the config says so.

Every row the endpoint received is charged to the query ledger, retries included: each
request carries one chunk of at most ``max_batch`` rows; ``Target.predict`` records a
chunk once its request is answered, and each failed attempt whose body was sent is charged
here as unanswered rows (``QueryLedger.retried``; a finding lists them as
``retried_rows``). ``send_raw``, the unchecked path that input fuzzing uses, charges every
request it sends, answered or not.

Requests go through :mod:`redline.targets.http_client`: ``timeout`` bounds the whole
request, answers are read up to ``max_response_bytes``, and redirects leave the first
origin only when the config says ``redirects: cross_origin`` (and then without credentials).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.parse
from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from ..util.urls import REDACTED, redact_url
from ._common import check_labels, check_probabilities, positive_class_columns
from .base import Capabilities, InputSpec, Target
from .config import TargetConfig
from .http_client import HttpFailure, post

DEFAULT_MAX_BATCH = 256


class _MalformedAnswer(Exception):
    """The endpoint answered 2xx with a body that does not follow the protocol."""


@dataclasses.dataclass(frozen=True)
class RawAnswer:
    """What one unchecked request got back (see :meth:`HttpTarget.send_raw`)."""

    status: int | None = None  # the HTTP status; None when no answer came
    body: bytes = b""  # the start of the answer body
    error: str = ""  # why no answer came, in one line
    timed_out: bool = False  # no answer within the timeout
    refused_upload: bool = False  # the server closed the connection while the request was still being sent


class TokenBucket:
    """Allows at most ``rate`` acquisitions per second, one at a time (no bursts)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            time.sleep(wait)


class HttpTarget(Target):
    """A classifier served over HTTP(S). See the module docstring for the protocol.

    The config's input settings are applied to ``input_spec``; ``feature_names`` (e.g. the
    data set's) let its constraints name features.
    """

    def __init__(
        self,
        url: str,
        *,
        config: TargetConfig | None = None,
        input_spec: InputSpec | None = None,
        n_classes: int | None = None,
        feature_names: list[str] | None = None,
        class_names: list[str] | None = None,
    ):
        super().__init__()
        try:
            scheme = urllib.parse.urlsplit(url).scheme
            urllib.parse.urlsplit(url).port  # noqa: B018  # a bad port raises here, not at the first query
        except ValueError as exc:
            raise UsageError(f"{redact_url(url)}: not a valid URL ({exc})") from None
        if scheme not in ("http", "https"):
            raise UsageError(f"{url}: an HTTP target needs an http:// or https:// URL")
        self.url = url
        self.spec = redact_url(url)  # what reports, logs and messages show
        self.config = config or TargetConfig()
        spec = self.config.apply_input(input_spec, feature_names)
        if spec is None:
            raise UsageError(
                f"{self.spec}: the input shape is unknown; give data or input.shape in the target config (--target-config)"
            )
        self.input_spec = spec
        self.n_classes = self.config.n_classes or n_classes  # type: ignore[assignment]  # None until known
        self.class_names, self._endpoint_to_class, self.label_mismatch = _class_numbering(
            self.config, class_names, self.spec)
        if self._endpoint_to_class is not None:
            self.n_classes = len(self.class_names)
        self.max_batch = self.config.max_batch or DEFAULT_MAX_BATCH
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **self.config.request_headers(),
        }
        # Everything the config adds may be a secret; none of it follows a redirect elsewhere.
        self._secret_headers = frozenset(h.lower() for h in self.config.request_headers())
        self._secrets = _secret_spellings(url, self.config)
        self._bucket = TokenBucket(self.config.rate_limit) if self.config.rate_limit else None
        self._outputs_lock = threading.Lock()
        self._outputs_known = self.config.outputs is not None
        self.capabilities = Capabilities(
            outputs=self.config.outputs or "probabilities", gradients=False, trainable=False, remote=True
        )

    # -- queries -----------------------------------------------------------------------
    def needs_discovery(self) -> bool:
        return not self._outputs_known or self.n_classes is None

    def _predict(self, x: np.ndarray) -> np.ndarray:
        body = json.dumps(self._request_body(x)).encode("utf-8")
        attempts = 1 + self.config.retries
        last = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.config.backoff * 2 ** (attempt - 1))
            sent = True  # a status or a body came back, so the request arrived
            try:
                answer = self._post(body)
                if not 200 <= answer.status < 300:
                    text = _one_line(self.scrub(answer.body[: 200 + self._longest_secret()]).decode("utf-8", "replace"))
                    last = f"HTTP {answer.status}" + (f": {text[:200]}" if text else "")
                else:
                    return self._parse(answer.body, len(x))
            except HttpFailure as exc:
                sent, last = exc.sent, str(exc)
                if not exc.retryable:
                    self._charge_unanswered(len(x), sent)
                    raise TargetError(f"{self.spec}: {self.scrub_text(_one_line(last))}") from None
            except _MalformedAnswer as exc:
                last = f"malformed answer: {exc}"
            self._charge_unanswered(len(x), sent)
        raise TargetError(f"{self.spec}: no valid answer after {attempts} attempt(s); last error: "
                          f"{self.scrub_text(_one_line(last))}")

    # -- secrets an endpoint may echo back -------------------------------------------------
    def scrub(self, data: bytes) -> bytes:
        """``data`` (an answer) with every secret this target sends replaced: an endpoint that
        echoes the request's headers into an error must not put the token into reports."""
        for secret in self._secrets:
            data = data.replace(secret, REDACTED.encode())
        return data

    def scrub_text(self, text: str) -> str:
        return self.scrub(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")

    def _longest_secret(self) -> int:
        return max((len(s) for s in self._secrets), default=0)

    def _charge_unanswered(self, rows: int, sent: bool) -> None:
        if sent:  # the endpoint received these rows even though no usable answer came back
            self.ledger.record_unanswered(rows)

    def _post(self, body: bytes, *, headers: dict[str, str] | None = None, max_bytes: int | None = None,
              deadline: float | None = None, truncate: bool = False):
        if self._bucket is not None:
            self._bucket.acquire()
        return post(
            self.url,
            body,
            self._headers if headers is None else headers,
            deadline=self.config.timeout if deadline is None else deadline,
            max_bytes=self.config.max_response_bytes if max_bytes is None else max_bytes,
            redirects=self.config.redirects,
            secret_headers=self._secret_headers,
            truncate=truncate,
        )

    def _request_body(self, x: np.ndarray) -> dict[str, Any]:
        return self.request_object(x.tolist())

    def _parse(self, raw: bytes, rows: int) -> np.ndarray:
        try:
            answer = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _MalformedAnswer(f"not JSON: {self.scrub(raw[: 80 + self._longest_secret()])[:80]!r}") from None
        except RecursionError:
            raise _MalformedAnswer("JSON nested too deeply to read") from None
        with self._outputs_lock:
            kind = self.capabilities.outputs if self._outputs_known else self._detect_outputs(answer)
            positive = self.config.positive_probability_key
            key = (positive or self.config.probabilities_key) if kind == "probabilities" else self.config.labels_key
            found, value = _get_path(answer, key)
            if not found:
                raise _MalformedAnswer(f"no {key!r} in the answer")
            try:
                if kind == "probabilities" and positive:
                    out = self._renumber(positive_class_columns(value, rows, self.spec))
                    columns = 2 if self._endpoint_to_class is None else len(self.class_names or ())
                    out = check_probabilities(out, rows, columns, self.spec)
                    self.n_classes = out.shape[1]
                elif kind == "probabilities":
                    out = self._renumber(self._probability_rows(value, rows))
                    out = check_probabilities(out, rows, self.n_classes, self.spec)
                    if self.n_classes is None:
                        self.n_classes = out.shape[1]
                else:
                    out = check_labels(self._label_numbers(value), rows, self.n_classes, self.spec)
            except RecursionError:
                raise _MalformedAnswer(f"the {kind} are nested too deeply to read") from None
            except (TargetError, ValueError, TypeError) as exc:
                hint = ""
                if (kind == "probabilities" and not positive and isinstance(value, list) and len(value) == rows
                        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                    hint = (f"; one number per row: if it is a two-class model's class-1 probability, say "
                            f"response: {{positive_probability_key: {key}}} in the target config")
                raise _MalformedAnswer(f"{exc}{hint}") from None
            if not self._outputs_known:  # the first well-formed answer settles the protocol
                self._outputs_known = True
                self.capabilities = dataclasses.replace(self.capabilities, outputs=kind)
        return out

    # -- class names and the endpoint's own class order -----------------------------------
    def _probability_rows(self, value: Any, rows: int) -> np.ndarray:
        """Positional rows as they are; rows of ``{class name: probability}`` in the
        endpoint's order (the config's class_names, else the data's)."""
        if not (isinstance(value, list) and value and all(isinstance(row, dict) for row in value)):
            return np.asarray(value, dtype=np.float64)
        names = self.config.class_names or self.class_names
        if not names:
            raise TargetError(f"{self.spec}: probabilities come keyed by class name; say which name is class 0, 1, "
                              f"... with class_names: [...] in the target config")
        column = {name: j for j, name in enumerate(names)}
        out = np.zeros((len(value), len(names)))
        for i, row in enumerate(value):
            unknown = [str(k) for k in row if str(k) not in column]
            if unknown:
                raise TargetError(f"{self.spec}: an answer names classes {_listed(unknown)} that are not among "
                                  f"{_listed(names)}; list every class in class_names in the target config")
            for key, p in row.items():
                out[i, column[str(key)]] = p
        return out

    def _label_numbers(self, value: Any) -> np.ndarray:
        """Class numbers of a labels answer: text labels read through the class names,
        numbers taken as the endpoint's own class numbers."""
        labels = np.asarray(value)
        if labels.dtype.kind in "US" or (labels.dtype.kind == "O" and any(isinstance(v, str) for v in labels.flat)):
            texts = [str(v) for v in labels.flat]
            number = {name: k for k, name in enumerate(self.class_names or ())}
            if any(t in number for t in texts) or not all(t.strip().isdigit() for t in texts):
                return self._named_labels(labels, texts, number)
            labels = np.array([int(t) for t in texts], dtype=np.int64).reshape(labels.shape)  # numbers sent as text
        if self._endpoint_to_class is None:
            return labels
        labels = check_labels(labels, len(labels) if labels.ndim else 0, len(self._endpoint_to_class), self.spec)
        return self._endpoint_to_class[labels]

    def _named_labels(self, labels: np.ndarray, texts: list[str], number: dict[str, int]) -> np.ndarray:
        if not number:
            raise TargetError(f"{self.spec}: the endpoint answers labels as text (e.g. {texts[0]!r}); say which name "
                              f"is class 0, 1, ... with class_names: [...] in the target config, or scan with data "
                              f"whose labels are those names")
        unknown = sorted({t for t in texts if t not in number})
        if unknown:
            raise TargetError(f"{self.spec}: the endpoint answers labels {_listed(unknown)}, which are not among the "
                              f"classes {_listed(self.class_names)}; list every class the endpoint can answer in "
                              f"class_names in the target config")
        return np.array([number[t] for t in texts], dtype=np.int64).reshape(labels.shape)

    def _renumber(self, probabilities: np.ndarray) -> np.ndarray:
        """Columns in the endpoint's class order moved to the scan's class numbers."""
        if self._endpoint_to_class is None:
            return probabilities
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] != len(self._endpoint_to_class):
            return probabilities  # the shape check that follows says what is wrong
        out = np.zeros((probabilities.shape[0], len(self.class_names)))
        out[:, self._endpoint_to_class] = probabilities
        return out

    def _detect_outputs(self, answer: Any) -> str:
        if self.config.positive_probability_key is not None:
            return "probabilities"
        if _get_path(answer, self.config.probabilities_key)[0]:
            return "probabilities"
        if _get_path(answer, self.config.labels_key)[0]:
            return "labels"
        raise _MalformedAnswer(
            f"neither {self.config.probabilities_key!r} nor {self.config.labels_key!r} in the answer"
        )


    # -- unchecked requests (input fuzzing) ----------------------------------------------
    def raw_transport(self) -> HttpTarget:
        """The endpoint itself: it sends raw requests through :meth:`send_raw`."""
        return self

    def request_object(self, inputs: Any) -> dict[str, Any]:
        """The JSON request object carrying ``inputs`` (any JSON value) at the configured key."""
        body: dict[str, Any] = json.loads(json.dumps(dict(self.config.request_fields)))  # a deep copy
        _set_path(body, self.config.inputs_key, inputs)
        return body

    def find_prediction(self, answer: Any) -> tuple[str, Any] | None:
        """``(outputs kind, value)`` of the prediction in a decoded JSON answer, looked up
        under the configured keys, or None when the answer holds none."""
        for kind, key in (("probabilities", self.config.positive_probability_key or self.config.probabilities_key),
                          ("labels", self.config.labels_key)):
            found, value = _get_path(answer, key)
            if found:
                return kind, value
        return None

    def send_raw(
        self,
        body: bytes,
        *,
        rows: int = 1,
        content_type: str = "application/json",
        timeout: float | None = None,
        max_answer: int = 1 << 20,
    ) -> RawAnswer:
        """POST ``body`` exactly as given: one attempt, no retries, nothing checked either way.

        Input fuzzing sends malformed requests through here on purpose; queries go through
        :meth:`predict`. The request is charged to the ledger as ``rows`` (at least 1)
        before it is sent, answered or not, because the server received it. Headers, auth
        and the rate limit come from the config; ``timeout`` (default: the config's) bounds
        the whole request; at most ``max_answer`` bytes of the answer are read (the rest is
        dropped, not an error).
        """
        charged = max(1, int(rows))
        self.ledger.reserve(charged)
        self.ledger.record(charged)
        headers = {k: v for k, v in self._headers.items() if k.lower() != "content-type"}
        headers["Content-Type"] = content_type
        wait = self.config.timeout if timeout is None else timeout
        try:
            answer = self._post(body, headers=headers, max_bytes=max_answer, deadline=wait, truncate=True)
        except HttpFailure as exc:
            if exc.timed_out:
                return RawAnswer(error=f"no answer within {wait:g} s", timed_out=True)
            return RawAnswer(status=exc.status, error=self.scrub_text(_one_line(str(exc))),
                             refused_upload=exc.refused_upload)
        return RawAnswer(status=answer.status, body=self.scrub(answer.body))


def _get_path(data: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path (``result.scores``) into nested JSON objects."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
        if not isinstance(data, dict):
            raise UsageError(f"request.inputs_key {path!r} runs into the non-object field {part!r}")
    data[last] = value


def _class_numbering(config: TargetConfig, data_names: list[str] | None,
                     spec: str) -> tuple[list[str] | None, np.ndarray | None, str | None]:
    """(the scan's class names by number, where each of the endpoint's classes goes, why
    the data's labels cannot be read as the endpoint's classes or None).

    The data's labels fix the numbering the checks use; a class the config names and the
    data never holds is numbered after the data's, and a data class the endpoint does not
    know simply never gets answered. When each side has a class the other lacks, names are
    probably spelt differently: like a local model's label mismatch, this ends only the
    checks that read labels. Without class_names in the config the endpoint is taken to
    number classes as the data does (the second item is None).
    """
    data_names = [str(n) for n in data_names] if data_names else None
    names = config.class_names
    if not names:
        return data_names, None, None
    known = set(data_names or ())
    numbering = list(data_names or ()) + [n for n in names if n not in known]
    mismatch = None
    data_only = [n for n in data_names or () if n not in set(names)]
    endpoint_only = [n for n in names if n not in known]
    if data_only and endpoint_only:
        mismatch = (f"{spec}: the data's classes {_listed(data_only)} are not in the target config's class_names and "
                    f"its class_names {_listed(endpoint_only)} are not among the data's labels: each side has a class "
                    f"the other lacks, so the labels would be read as the wrong classes; spell the classes alike")
    index = {name: k for k, name in enumerate(numbering)}
    return numbering, np.array([index[n] for n in names], dtype=np.int64), mismatch


def _secret_spellings(url: str, config: TargetConfig) -> tuple[bytes, ...]:
    """Every secret the target sends (header values, auth, the URL's user info and query
    values), as raw, JSON-escaped and percent-encoded bytes, longest first; values under
    four characters are too common to replace safely."""
    values: set[str] = set(config.request_headers().values())
    if config.auth is not None:
        values.update(config.auth[1:])
    parts = urllib.parse.urlsplit(url)
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        values.update({userinfo, *userinfo.split(":", 1)})
        values.update(urllib.parse.unquote(v) for v in userinfo.split(":", 1))
    for item in parts.query.split("&") if parts.query else ():
        _name, sep, value = item.partition("=")
        values.update({value, urllib.parse.unquote_plus(value)} if sep else {item})
    spellings: set[bytes] = set()
    for value in values:
        if len(value) < 4:
            continue
        for text in (value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
                     value.split(" ", 1)[1] if value.startswith(("Bearer ", "Basic ")) else value):
            if len(text) >= 4:
                spellings.add(text.encode("utf-8", "surrogateescape"))
    return tuple(sorted(spellings, key=len, reverse=True))


def _listed(names: Any, most: int = 8) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(repr(n) for n in names[:most])
    return f"[{shown}{', ...' if len(names) > most else ''}]"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def open_url(url: str, request: Any) -> HttpTarget:
    """The adapter table's loader for ``http(s)://`` URLs; the target applies its config itself."""
    return HttpTarget(
        url,
        config=request.config,
        input_spec=request.data_input_spec,
        n_classes=request.n_classes_hint,
        feature_names=request.feature_names,
        class_names=getattr(request.data, "class_names", None),
    )
