"""The online path against a fake OSV API on 127.0.0.1 (there is no internet here, by design)."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from redline.deps import OsvApi, audit
from redline.errors import DataError, UsageError


class FakeOsv:
    """Answers querybatch from a fixed table (name, version) -> ids, paging after ``page_size`` ids."""

    def __init__(self, records, answers, page_size=100, status=200, delay=0.0):
        self.records = {r["id"]: r for r in records}
        self.answers = answers
        self.page_size = page_size
        self.status = status
        self.delay = delay
        self.requests = []

    def querybatch(self, body):
        results = []
        for query in body["queries"]:
            ids = self.answers.get((query["package"]["name"], query["version"]), [])
            assert query["package"]["ecosystem"] == "PyPI"
            start = int(query.get("page_token") or 0)
            page = ids[start : start + self.page_size]
            result = {"vulns": [{"id": i, "modified": "2099-01-01T00:00:00Z"} for i in page]} if page else {}
            if start + self.page_size < len(ids):
                result["next_page_token"] = str(start + self.page_size)
            results.append(result)
        return {"results": results}


@pytest.fixture
def serve():
    servers = []

    def start(fake):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (the timeout test)

            def do_POST(self):
                time.sleep(fake.delay)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(("POST", self.path, body))
                if fake.status != 200:
                    return self._reply(fake.status, {"message": "boom"})
                if self.path != "/v1/querybatch":
                    return self._reply(404, {})
                self._reply(200, fake.querybatch(body))

            def do_GET(self):
                fake.requests.append(("GET", self.path, None))
                vid = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/v1/vulns/") and vid in fake.records:
                    return self._reply(200, fake.records[vid])
                self._reply(404, {"message": "not found"})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def api_answers(expected):
    versions = {"pyyaml": "5.3", "requests": "2.28.1", "numpy": "1.21.9", "pillow": "9.0.0", "evil-pkg": "1.0"}
    table = {(name, versions[name]): list(ids) for name, (ids, *_rest) in expected.items()}
    table[("flask", "2.0.0")] = ["GHSA-test-flask-0004"]  # withdrawn: the client must drop it
    return table


def test_online_audit_through_the_fake_api(serve, advisories, expected, requirements, monkeypatch):
    from redline.deps import from_requirements

    fake = FakeOsv(advisories, api_answers(expected))
    monkeypatch.setenv("REDLINE_OSV_URL", serve(fake))
    vulns = audit(from_requirements(requirements).packages, None)
    assert {v.package: (v.ids, v.aliases, v.severity.label, v.fixed_in) for v in vulns} == expected
    posts = [r for r in fake.requests if r[0] == "POST"]
    assert len(posts) == 1 and len(posts[0][2]["queries"]) == 8
    names = {q["package"]["name"] for q in posts[0][2]["queries"]}
    assert "pyyaml" in names and "evil-pkg" in names  # normalised before asking
    gets = [r[1] for r in fake.requests if r[0] == "GET"]
    assert len(gets) == len(set(gets))  # each record fetched once


def test_pages_of_results_are_followed(serve, advisories):
    many = [
        {
            "id": f"GHSA-page-{i:04d}",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "big"}, "versions": ["1.0"]}],
        }
        for i in range(7)
    ]
    fake = FakeOsv(many, {("big", "1.0"): [r["id"] for r in many]}, page_size=3)
    vulns = audit({"big": "1.0"}, OsvApi(serve(fake)))
    assert len(vulns) == 7
    assert sum(1 for r in fake.requests if r[0] == "POST") == 3


def test_http_errors_and_timeouts_are_data_errors(serve, advisories):
    with pytest.raises(DataError, match="HTTP 503"):
        OsvApi(serve(FakeOsv(advisories, {}, status=503))).lookup({"x": "1.0"})
    slow = OsvApi(serve(FakeOsv(advisories, {}, delay=0.5)), timeout=0.1)
    with pytest.raises(DataError, match="unreachable"):
        slow.lookup({"x": "1.0"})


def test_unreachable_api_fails_fast_with_a_hint():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DataError, match=r"OSV API unreachable.*--osv-db"):
        OsvApi(f"http://127.0.0.1:{port}").lookup({"x": "1.0"})
    assert time.monotonic() - started < 3


def test_only_http_urls_are_accepted(monkeypatch):
    monkeypatch.setenv("REDLINE_OSV_URL", "file:///etc")
    with pytest.raises(UsageError, match="http"):
        OsvApi()
