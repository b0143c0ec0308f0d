from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest


@pytest.fixture(scope="module")
def logreg_problem():
    """A binary logistic regression on 6 features and its data by role."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(600, 6)).astype(np.float32)
    y = (x @ np.array([2.0, -1.5, 1.0, 0.5, -0.5, 0.0]) + rng.normal(0, 0.3, 600) > 0.75).astype(int)
    model = LogisticRegression(C=10.0).fit(x[:300], y[:300])
    data = {"x_train": x[:300], "y_train": y[:300], "x_test": x[300:450], "y_test": y[300:450],
            "x_pool": x[450:], "y_pool": y[450:]}
    return model, data


class ModelServer:
    """A prediction API on 127.0.0.1 that counts the rows it answers."""

    def __init__(self, model, labels_only=False):
        self.model, self.labels_only, self.rows = model, labels_only, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                x = np.asarray(body["inputs"], dtype=np.float32)
                server.rows += len(x)
                if server.labels_only:
                    answer = {"labels": server.model.predict(x).tolist()}
                else:
                    answer = {"probabilities": server.model.predict_proba(x).tolist()}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def model_server():
    return ModelServer
