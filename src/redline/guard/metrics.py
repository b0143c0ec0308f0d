"""The guard's counters and the Prometheus text format (version 0.0.4) of ``GET /metrics``.

Written out rather than taken from a client library: a handful of counters, one
histogram and the defences' own gauges are all the guard has. Each worker process counts
its own requests (with several workers, Prometheus sums the scrapes).
"""
from __future__ import annotations

import math
import re
import threading
from collections import defaultdict
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the latency histogram's buckets: the guard adds milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NAME_SAFE = re.compile(r"[^a-zA-Z0-9_]")


def _label_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    text = ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs)
    return "{" + text + "}" if text else ""


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def metric_name(text: str) -> str:
    """``text`` made into a valid metric-name part."""
    name = _NAME_SAFE.sub("_", text)
    return name if name and not name[0].isdigit() else "_" + name


class GuardMetrics:
    """Counters of one guard process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = defaultdict(int)  # (status, reason) -> count
        self.upstream_errors: dict[str, int] = defaultdict(int)  # kind -> count
        self.defence_events: dict[tuple[str, str], int] = defaultdict(int)  # (defence, event) -> count
        self.reloads: dict[str, int] = defaultdict(int)  # ok / failed -> count
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.in_flight = 0

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def finished(self, status: int, reason: str, seconds: float, events: list[dict] = (),
                 upstream_error: str | None = None) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests[(str(status), reason)] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1
                    break
            for event in events:
                self.defence_events[(str(event.get("defence", "")), str(event.get("event", "")))] += 1
            if upstream_error is not None:
                self.upstream_errors[upstream_error] += 1

    def reloaded(self, ok: bool) -> None:
        with self._lock:
            self.reloads["ok" if ok else "failed"] += 1

    def render(self, *, policy_digest: str, clients: int,
               defence_values: Iterable[tuple[str, str, str, float]]) -> str:
        """The text of ``GET /metrics``; ``defence_values`` are (defence, client, metric,
        value) from each defence's :meth:`~redline.defences.base.Defence.metrics`."""
        with self._lock:
            requests = dict(self.requests)
            upstream = dict(self.upstream_errors)
            events = dict(self.defence_events)
            reloads = dict(self.reloads)
            buckets, total, count, in_flight = list(self.buckets), self.latency_sum, self.latency_count, self.in_flight
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family("redline_guard_requests_total", "counter", "Requests answered, by HTTP status and reason.")
        for (status, reason), n in sorted(requests.items()):
            out.append(f"redline_guard_requests_total{_labels([('status', status), ('reason', reason)])} {n}")
        family("redline_guard_locked_out_requests_total", "counter", "Requests refused because the client is locked out (403).")
        out.append(f"redline_guard_locked_out_requests_total {sum(n for (s, _), n in requests.items() if s == '403')}")
        family("redline_guard_request_duration_seconds", "histogram", "Time from the request's arrival to its answer.")
        running = 0
        for bound, n in zip(LATENCY_BUCKETS, buckets):
            running += n
            out.append(f"redline_guard_request_duration_seconds_bucket{_labels([('le', _number(bound))])} {running}")
        out.append(f'redline_guard_request_duration_seconds_bucket{{le="+Inf"}} {count}')
        out.append(f"redline_guard_request_duration_seconds_sum {_number(total)}")
        out.append(f"redline_guard_request_duration_seconds_count {count}")
        family("redline_guard_upstream_errors_total", "counter", "Requests the model behind failed, by kind.")
        for kind, n in sorted(upstream.items()):
            out.append(f"redline_guard_upstream_errors_total{_labels([('kind', kind)])} {n}")
        family("redline_guard_defence_events_total", "counter", "Events the defences recorded (flags, lock-outs, smoothing).")
        for (defence, event), n in sorted(events.items()):
            out.append(f"redline_guard_defence_events_total{_labels([('defence', defence), ('event', event)])} {n}")
        family("redline_guard_defence_metric", "gauge", "What each defence reports about itself (Defence.metrics).")
        for defence, client, metric, value in defence_values:
            out.append(f"redline_guard_defence_metric"
                       f"{_labels([('defence', defence), ('client', client), ('metric', metric_name(metric))])} {_number(value)}")
        family("redline_guard_policy_reloads_total", "counter", "Policy reloads, by result (a failed one keeps the old policy).")
        for result in ("ok", "failed"):
            out.append(f"redline_guard_policy_reloads_total{_labels([('result', result)])} {reloads.get(result, 0)}")
        family("redline_guard_policy_info", "gauge", "The policy in force (SHA-256 of its file) and its number of clients.")
        out.append(f"redline_guard_policy_info{_labels([('digest', policy_digest), ('clients', clients)])} 1")
        family("redline_guard_in_flight_requests", "gauge", "Requests being handled now.")
        out.append(f"redline_guard_in_flight_requests {in_flight}")
        return "\n".join(out) + "\n"
