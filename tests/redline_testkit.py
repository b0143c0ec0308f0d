"""Small models and data for tests: quick, deterministic, no framework needed."""
from __future__ import annotations

import shutil

import numpy as np

from redline.targets.base import Capabilities, InputSpec, Target


class ArrayTarget(Target):
    """A numpy linear-softmax model: quick, deterministic, no framework needed."""

    def __init__(self, weights, bias, outputs="probabilities", spec="test:linear"):
        super().__init__()
        self.weights, self.bias = np.asarray(weights, float), np.asarray(bias, float)
        self.spec = spec
        self.input_spec = InputSpec(shape=(self.weights.shape[0],), lower=-10.0, upper=10.0)
        self.n_classes = self.weights.shape[1]
        self.capabilities = Capabilities(outputs=outputs)
        self.answered = 0

    def _predict(self, x):
        self.answered += len(x)
        z = x.reshape(len(x), -1) @ self.weights + self.bias
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return p if self.capabilities.outputs == "probabilities" else p.argmax(1)


def counting_torch_target_class():
    """A TorchTarget subclass whose class attribute ``answered`` counts every row the model
    answers, through predict or logits, so tests can check the ledger against it."""
    from redline.targets.torch import TorchTarget

    class CountingTorchTarget(TorchTarget):
        answered = 0

        def _predict(self, x):
            CountingTorchTarget.answered += len(x)
            return super()._predict(x)

        def _torch_logits(self, x):
            CountingTorchTarget.answered += int(x.shape[0])
            return super()._torch_logits(x)

    return CountingTorchTarget


def two_blobs(n: int = 800, binary_tail: bool = False):
    """Two overlapping Gaussian blobs in [0, 1]^10 (class 1 brighter), as (x, y), seed 0;
    with ``binary_tail`` the last three features are 0/1 (integer features for constraints)."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=n)
    x = (rng.normal(size=(n, 10)) * 0.3 + np.where(y[:, None] == 1, 0.6, 0.4)).clip(0, 1).astype(np.float32)
    if binary_tail:
        x[:, 7:] = x[:, 7:] > 0.5
    return x, y


def train_two_class_net(x, y, hidden: int = 16, seed: int = 0):
    """A one-hidden-layer torch classifier fitted by full-batch Adam (deterministic)."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    d = int(np.prod(x.shape[1:]))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net


def bright_top_tiles(n: int):
    """8x8 one-channel images in [0, 1], as (x, y), seed 1; class 1 is brighter in the top half."""
    import numpy as np

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=n)
    x = rng.uniform(0.2, 0.6, size=(n, 1, 8, 8))
    x[:, :, :4] += np.where(y == 1, 0.25, 0.0)[:, None, None, None]
    return x.clip(0, 1).astype(np.float32), y


# Headless Chromium from the system (Debian's chromium and chromium-driver), for browser tests.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def photo_patches(n: int, seed: int, side: int = 8) -> np.ndarray:
    """``n`` grey crops of scikit-learn's two sample photos (16-200 pixels wide), box-resized
    to ``side`` x ``side`` in [0, 1], shaped (n, 1, side, side): natural images of another
    domain than digits, as a KnockoffNets thief without the model's data would send."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    photos = [image.mean(axis=2) for image in load_sample_images().images]
    out = []
    for i in range(n):
        photo, width = photos[i % 2], int(rng.integers(16, 201))
        r, c = int(rng.integers(photo.shape[0] - width)), int(rng.integers(photo.shape[1] - width))
        crop = Image.fromarray(photo[r:r + width, c:c + width].astype(np.uint8)).resize((side, side), Image.BOX)
        out.append(np.asarray(crop, np.float32)[None] / 255.0)
    return np.stack(out)


def headless_chromium(width: int = 1280, height: int = 900):
    """A Selenium driver of the system's Chromium, headless, at ``width`` x ``height`` CSS pixels
    (device scale 1, so screenshots are that size); quit it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


class ModelVersionsServer:
    """One prediction service on 127.0.0.1 serving model versions chosen by the ``?model=``
    query value: ``logistic`` (a fixed logistic function of the features, which equation
    solving copies exactly), ``noise`` (random answers) and ``broken`` (HTTP 500 to every
    request). Other query parameters (a key) are ignored. Use as a context manager; ``url``
    is the endpoint without a query, ``npz(path)`` writes data the service takes."""

    WEIGHTS = np.array([2.0, -1.5, 1.0, 0.5, -0.5, 0.0])

    def __init__(self):
        import json
        import threading
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        weights = self.WEIGHTS

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                rows = np.asarray(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"], float)
                version = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("model", [""])[0]
                code, answer = 200, None
                if version == "broken":
                    code, answer = 500, {"error": "this version is down"}
                elif version == "noise":
                    p = np.random.default_rng(len(rows)).uniform(size=len(rows))
                else:
                    p = 1.0 / (1.0 + np.exp(-(rows @ weights - 0.75) * 4))
                if answer is None:
                    answer = {"probabilities": np.stack([1 - p, p], axis=1).tolist()}
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def npz(self, path) -> str:
        """Rows of the service's six features in [0, 1], by role, as an ``npz:`` DATA spec."""
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, size=(400, 6)).astype(np.float32)
        y = (x @ self.WEIGHTS > 0.75).astype(int)
        np.savez(path, x_train=x[:200], y_train=y[:200], x_test=x[200:300], y_test=y[200:300],
                 x_pool=x[300:], y_pool=y[300:])
        return f"npz:{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
