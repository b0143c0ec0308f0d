"""A model served on redline's HTTP protocol on 127.0.0.1, for benchmarks that attack a
black-box endpoint: ``POST {"inputs": [...]}`` -> ``{"probabilities": [...]}``."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class ProbabilityEndpoint:
    """``predict`` (rows -> probabilities) served in a thread; ``rows`` counts the rows it
    answered. Calls are serialised, as one model process would answer them."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]):
        self.rows = 0
        lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                x = np.asarray(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"], np.float32)
                with lock:
                    endpoint.rows += len(x)
                    p = np.asarray(predict(x), dtype=np.float64)
                body = json.dumps({"probabilities": p.tolist()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ProbabilityEndpoint:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()
