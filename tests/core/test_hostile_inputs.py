"""Hostile input, end to end: each case runs the real ``redline`` command in a child process
under a memory cap (RLIMIT_AS) and a wall-clock timeout, and must end with a one-line
error or a correct result, never a hang, a traceback or a forged terminal line.

The ceilings are generous for a loaded CI machine (importing redline alone takes about a
second); what they rule out is the unbounded behaviour of the reported cases (minutes,
gigabytes). Endpoint limits are also tested in-process in tests/targets.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import redline

SRC = str(Path(redline.__file__).resolve().parents[1])
MEMORY_CAP = 1536 << 20  # bytes of address space for the child
TIMEOUT = 60.0  # seconds; the unbounded cases took minutes or ran out of memory

_CHILD = textwrap.dedent(
    """
    import resource, sys
    cap = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from redline.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def run_redline(*args: str, cwd: Path | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    if cwd is None:  # a scan's default --out is relative: never write into the checkout
        cwd = Path(tempfile.mkdtemp(prefix="redline-hostile-"))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(MEMORY_CAP), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
    done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return done


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("redline: error: "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text


# --- YAML ----------------------------------------------------------------------------------------

LOL = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'


def alias_bomb(prefix: str) -> str:
    """About 570 bytes that stand for 9**9 (387 million) strings once the aliases are expanded."""
    lines = [prefix.rstrip("\n"), f"x-a: &a {LOL}"]
    names = "abcdefghi"
    for prev, name in zip(names, names[1:]):
        lines.append(f"x-{name}: &{name} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    lines.append("description: *i")
    return "\n".join(lines) + "\n"


SYSTEM_HEAD = "schema: redline.system/1\nname: bomb\n"
INCIDENT_HEAD = "schema: redline.incident/1\ntitle: bomb\nwhat_happened: x\n"


@pytest.mark.parametrize(
    "kind, head",
    [("system", SYSTEM_HEAD), ("incident", INCIDENT_HEAD), ("context", ""), ("target-config", "")],
)
def test_yaml_alias_bomb_is_refused_in_every_command(tmp_path, kind, head):
    path = tmp_path / f"{kind}.yaml"
    path.write_text(alias_bomb(head), encoding="utf-8")
    assert path.stat().st_size < 700
    argv = {
        "system": ["threat-model", str(path)],
        "incident": ["triage", str(path)],
        "context": ["scan", "zoo:digits_logreg", "--context", str(path), "--no-progress"],
        "target-config": ["scan", "http://127.0.0.1:9/", "--data", small_csv(tmp_path), "--target-config", str(path),
                          "--no-progress"],
    }[kind]
    done = run_redline(*argv)
    assert_one_line_error(done, "values once its aliases are expanded")
    assert "lol" not in done.stderr  # the expanded values are never reprinted


def test_yaml_alias_bomb_is_refused_in_well_under_a_second(tmp_path):
    from redline.errors import UsageError
    from redline.util.safe_yaml import load_yaml_text

    started = time.perf_counter()
    with pytest.raises(UsageError):
        load_yaml_text(alias_bomb(SYSTEM_HEAD), "system description")
    assert time.perf_counter() - started < 0.5


def test_deep_yaml_is_a_one_line_error_not_a_recursion_traceback(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("schema: redline.system/1\nname: " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    done = run_redline("threat-model", str(path))
    assert_one_line_error(done, "nested more than 64 levels deep")


def test_self_referring_yaml_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("schema: redline.system/1\nname: x\nx-loop: &l [1, *l]\n", encoding="utf-8")
    done = run_redline("threat-model", str(path))
    assert_one_line_error(done, "refers to a collection containing it")


# --- terminal output -----------------------------------------------------------------------------

FORGED = "\x1b[2K\x1b[1A\x1b[32mSAFE\x1b[0m \u202eelif.txt"


def test_threat_model_names_cannot_drive_the_terminal(tmp_path):
    path = tmp_path / "system.yaml"
    path.write_text(
        json.dumps({"schema": "redline.system/1", "name": FORGED, "description": "line\rover " + FORGED}),
        encoding="utf-8",
    )
    for extra, shown in (([], "\\x1b[32mSAFE"), (["--json"], "\\u001b[32mSAFE")):
        done = run_redline("threat-model", str(path), *extra)
        assert done.returncode == 0, done.stderr
        assert_no_raw_controls(done.stdout)
        assert shown in done.stdout and "\\u202e" in done.stdout
    assert json.loads(done.stdout)["system"]["name"] == FORGED  # the JSON still means the same


def test_triage_title_cannot_drive_the_terminal(tmp_path):
    path = tmp_path / "incident.yaml"
    path.write_text(
        json.dumps({"schema": "redline.incident/1", "title": FORGED, "what_happened": "model stolen " + FORGED}),
        encoding="utf-8",
    )
    done = run_redline("triage", str(path))
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout)
    assert "Incident: \\x1b[2K" in done.stdout


def test_error_messages_are_escaped(tmp_path):
    done = run_redline("threat-model", str(tmp_path / f"missing{FORGED}.yaml"))
    assert_one_line_error(done, "does not exist", "\\x1b[32mSAFE")
    assert_no_raw_controls(done.stderr)


class _HostileEndpoint(BaseHTTPRequestHandler):
    """Fails every request with an error body full of terminal escapes."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = f"boom {FORGED}\r\nnot vulnerable".encode()
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback():
    servers = []

    def start(handler):
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/predict"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def small_csv(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    x = rng.random((40, 2))
    path = tmp_path / "small.csv"
    path.write_text("a,b,y\n" + "".join(f"{r[0]:.3f},{r[1]:.3f},{int(r[0] > 0.5)}\n" for r in x), encoding="utf-8")
    return f"csv:{path}#label=y"


def test_endpoint_error_bodies_cannot_drive_the_terminal(tmp_path, loopback):
    url = loopback(_HostileEndpoint)
    config = tmp_path / "target.yaml"
    config.write_text("retries: 0\ntimeout: 5\n", encoding="utf-8")
    done = run_redline(
        "scan", url, "--data", small_csv(tmp_path), "--target-config", str(config), "--select", "FM05.learning"
    )
    assert "Traceback" not in done.stderr
    assert "HTTP 500" in done.stdout + done.stderr and "\\x1b[32mSAFE" in done.stdout + done.stderr
    assert_no_raw_controls(done.stdout + done.stderr)


# --- endpoints -----------------------------------------------------------------------------------


def test_slow_drip_endpoint_ends_the_scan_at_the_deadline(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return

            def drip(conn=conn):
                with conn:
                    try:
                        conn.recv(65536)
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                        while not stop.is_set():
                            conn.sendall(b" ")
                            time.sleep(0.5)
                    except OSError:
                        pass

            threading.Thread(target=drip, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    config = tmp_path / "target.yaml"
    config.write_text("retries: 0\ntimeout: 2\n", encoding="utf-8")
    try:
        done = run_redline(
            "scan",
            f"http://127.0.0.1:{sock.getsockname()[1]}/",
            "--data",
            small_csv(tmp_path),
            "--target-config",
            str(config),
            "--select",
            "FM05.learning",
            "--json",
        )
    finally:
        stop.set()
        sock.close()
    report = json.loads(done.stdout)
    (finding,) = [f for f in report["findings"] if f["check"] == "FM05.learning"]
    assert finding["status"] == "error" and "no complete answer within 2 s" in finding["reason"]
    assert finding["seconds"] < 10


class _EndlessChunked(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"[" * (1 << 20))
        try:
            while True:
                self.wfile.write(chunk)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_endless_answer_ends_the_check_within_the_memory_cap(tmp_path, loopback):
    url = loopback(_EndlessChunked)
    config = tmp_path / "target.yaml"
    config.write_text("retries: 0\ntimeout: 30\n", encoding="utf-8")
    done = run_redline(
        "scan", url, "--data", small_csv(tmp_path), "--target-config", str(config), "--select", "FM05.learning", "--json"
    )
    assert "MemoryError" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    (finding,) = [f for f in json.loads(done.stdout)["findings"] if f["check"] == "FM05.learning"]
    assert finding["status"] == "error" and "answer longer than the limit of 67,108,864 bytes" in finding["reason"]


# --- data files ----------------------------------------------------------------------------------

_LOAD = "from redline.data import load_data; import sys; d = load_data(sys.argv[1]); print(d.shape)"


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    child = _CHILD.replace("from redline.cli import main\nsys.exit(main(sys.argv[2:]))", "sys.argv = sys.argv[1:]\n" + code)
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", child, str(MEMORY_CAP), *args], capture_output=True, text=True, timeout=TIMEOUT, env=env
    )
    done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return done


def write_zero_npz(path: Path, shape: tuple[int, ...]) -> None:
    """An .npz whose x.npy declares float64 ``shape``. Only its first MiB of zeros is written:
    compressing all of them takes the test many seconds, and the refusal must come from the
    declared header before any array data is read (a full bomb is the same file, longer)."""
    import zipfile

    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": shape})
            member.write(block)
        archive.writestr("y.npy", _npy_bytes(np.zeros(shape[0])))


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_wide_csv_header_is_read_in_linear_time(tmp_path):
    columns = 100_000
    path = tmp_path / "wide.csv"
    with path.open("w") as fh:
        fh.write(",".join(f"c{i}" for i in range(columns)) + ",y\n")
        for r in range(8):
            fh.write(",".join("1" for _ in range(columns)) + f",{r % 2}\n")
    assert path.stat().st_size < 2_500_000
    done = run_python(_LOAD, f"csv:{path}#label=y")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "100000" in done.stdout
    assert done.seconds < 40  # was over 120 s before the header check became linear


def test_npz_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.npz"
    write_zero_npz(path, (100_000, 1_000))  # declares 800 MB of zeros
    assert path.stat().st_size < 1_000_000
    done = run_python(_LOAD, f"npz:{path}")
    assert done.returncode != 0
    assert "over the limit of 512 MiB" in done.stderr and "REDLINE_MAX_DATA_BYTES" in done.stderr
    assert "MemoryError" not in done.stderr


def test_npz_limit_is_configurable(tmp_path, monkeypatch):
    from redline.data import load_data
    from redline.errors import DataError

    path = tmp_path / "small.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((200, 4)), y=rng.integers(0, 2, 200))
    assert load_data(f"npz:{path}").shape[0] == 4
    monkeypatch.setenv("REDLINE_MAX_DATA_BYTES", "1000")
    with pytest.raises(DataError, match="over the limit"):
        load_data(f"npz:{path}")


def test_csv_cell_limit(tmp_path, monkeypatch):
    from redline.data import load_data
    from redline.errors import DataError

    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n" + "1,2,0\n3,4,1\n" * 50, encoding="utf-8")
    monkeypatch.setenv("REDLINE_MAX_CSV_CELLS", "30")
    with pytest.raises(DataError, match="more than 30 cells"):
        load_data(f"csv:{path}#label=y")


# --- files named by YAML, links in --out ---------------------------------------------------------


def test_incident_cannot_name_a_system_file_outside_its_folder(tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("schema: redline.system/1\nname: the secret system\n", encoding="utf-8")
    folder = tmp_path / "inbox"
    folder.mkdir()
    incident = folder / "incident.yaml"
    incident.write_text(
        "schema: redline.incident/1\ntitle: t\nwhat_happened: model stolen\nsystem: ../secret.yaml\n", encoding="utf-8"
    )
    done = run_redline("triage", str(incident))
    assert_one_line_error(done, "lies outside the folder", "--allow-outside-files")
    allowed = run_redline("triage", str(incident), "--allow-outside-files")
    assert allowed.returncode == 0 and "the secret system" in allowed.stdout
    (folder / "link.yaml").symlink_to(secret)  # a link inside the folder that points out is outside too
    incident.write_text(incident.read_text().replace("../secret.yaml", "link.yaml"), encoding="utf-8")
    assert_one_line_error(run_redline("triage", str(incident)), "lies outside the folder")


def test_artifacts_are_never_written_through_links(tmp_path):
    from redline.checks.base import CheckContext
    from redline.errors import UsageError

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "artifacts").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UsageError, match="is a link"):
        CheckContext(out).artifact("stolen.onnx")
    (out / "artifacts").unlink()
    (out / "artifacts").mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_text("keep me")
    (out / "artifacts" / "x.npy").symlink_to(victim)
    path, rel = CheckContext(out).artifact("x.npy")
    path.write_text("artifact")
    assert victim.read_text() == "keep me" and not path.is_symlink() and rel == "artifacts/x.npy"


def test_event_log_is_never_written_through_a_link(tmp_path):
    from redline.errors import UsageError
    from redline.pipeline.events import EventLog

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").symlink_to(victim)
    log = EventLog(out / "events.jsonl")
    with pytest.raises(UsageError, match="is a link"):
        log.append("scan_started")
    with pytest.raises(UsageError, match="is a link"):
        list(log.read())
    log.reset()  # a fresh scan removes the link itself, never its target
    log.append("scan_started")
    assert victim.read_text() == "keep me" and not (out / "events.jsonl").is_symlink()


class _Answering(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        payload = json.dumps({"probabilities": [[0.3, 0.7]] * len(body["inputs"])}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_url_query_secrets_stay_out_of_reports_and_logs(tmp_path, loopback):
    url = loopback(_Answering) + "?apikey=SECRET-KEY-42&model=v2"
    out = tmp_path / "out"
    done = run_redline(
        "scan", url, "--data", small_csv(tmp_path), "--select", "FM05.learning", "--budget", "50",
        "--out", str(out), "--format", "json,md,html,sarif,junit", "--no-progress",
    )
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "SECRET-KEY-42" not in done.stdout + done.stderr
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in written} >= {"report.json", "report.md", "report.sarif", "events.jsonl"}
    for path in written:
        assert b"SECRET-KEY-42" not in path.read_bytes(), path
    assert "apikey=REDACTED" in (out / "report.json").read_text()


# --- documents -----------------------------------------------------------------------------------


def test_threat_model_markdown_code_spans_hold_hostile_targets(tmp_path):
    markdown_it = pytest.importorskip("markdown_it")
    hostile = "http://x/` <img src=x onerror=alert(1)> `"
    path = tmp_path / "system.yaml"
    path.write_text(
        json.dumps(
            {
                "schema": "redline.system/1",
                "name": "n <img src=x onerror=alert(2)> ``` |",
                "scan": {"target": hostile, "data": "csv:`x`.csv#label=y"},
            }
        ),
        encoding="utf-8",
    )
    done = run_redline("threat-model", str(path), "--out", str(tmp_path / "tm"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "tm" / "threat-model.md").read_text(encoding="utf-8")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<img" not in html
    assert "onerror=alert(1)" in html  # still shown, as text inside a code span


def test_scan_files_table_cannot_be_forged_by_file_names(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    name = "m\x1b[2K\x1b[1A\x1b[32m SAFE 1 safe, 0 unsafe\x1b[8m\u202e.pkl"
    (tmp_path / name).write_bytes(pickle.dumps(Evil()))
    done = run_redline("scan-files", str(tmp_path))
    assert done.returncode == 1, done.stderr  # unsafe, whatever the name says
    assert_no_raw_controls(done.stdout)
    assert "\\x1b[32m SAFE" in done.stdout


def test_threat_model_html_and_mermaid_hold_hostile_names(tmp_path):
    from redline.threatmodel.assess import build_threat_model
    from redline.threatmodel.html import render_html
    from redline.threatmodel.render import render_markdown

    model = build_threat_model(
        {
            "schema": "redline.system/1",
            "name": "n <img src=x onerror=alert(3)> ```",
            "description": "</script><script>alert(4)</script> ``` \u202e",
            "scan": {"target": "http://x/` <img src=x onerror=alert(5)> `"},
        }
    )
    page = render_html(model)
    assert "<img src=x" not in page and "<script>alert(4)" not in page and "\u202e" not in page
    mermaid = render_markdown(model).split("```mermaid\n", 1)[1]
    assert "```" in mermaid and "`" not in mermaid.split("\n```", 1)[0]  # no backtick inside the fence
