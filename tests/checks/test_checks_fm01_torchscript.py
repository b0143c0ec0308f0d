"""White-box FM01 checks on TorchScript files (traced and scripted): TorchScript modules take
no forward hooks, so the gradient-masking probe must not need them."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import redline
from redline.data.base import Dataset


class _SmallCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.head = torch.nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        h = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.head(h.flatten(1))


@pytest.fixture(scope="module")
def tiles():
    """8x8 tiles, class 1 slightly brighter in the top half: learnable, and (at the default
    epsilon) breakable, since the classes sit close together."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=600)
    x = rng.uniform(0.2, 0.6, size=(600, 1, 8, 8))
    x[:, :, :4] += np.where(y == 1, 0.1, 0.0)[:, None, None, None]
    x = x.astype(np.float32)
    return Dataset("tiles", x[:400], y[:400], x[400:], y[400:], modality="image")


@pytest.fixture(scope="module")
def cnn(tiles):
    torch.manual_seed(0)
    net = _SmallCnn()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    xt, yt = torch.from_numpy(tiles.x_train), torch.from_numpy(tiles.y_train.astype(np.int64))
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    assert (net(torch.from_numpy(tiles.x_test)).argmax(1).numpy() == tiles.y_test).mean() > 0.9
    return net


@pytest.fixture(scope="module", params=["traced", "scripted"])
def model_file(request, cnn, tiles, tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / f"{request.param}.pt"
    saved = (torch.jit.trace(cnn, torch.from_numpy(tiles.x_test[:4])) if request.param == "traced"
             else torch.jit.script(cnn))
    torch.jit.save(saved, str(path))
    return path


def test_pgd_and_min_norm_reach_a_verdict_and_break_the_plain_cnn(model_file, tiles):
    report = redline.scan(f"torch:{model_file}", tiles, select="FM01.pgd,FM01.min_norm", budget=3000)
    by_check = {f.check: f for f in report.findings}
    for check in ("FM01.pgd", "FM01.min_norm"):
        finding = by_check[check]
        assert finding.status.value == "vulnerable", (check, finding.status, finding.reason)
        assert finding.metrics["success_rate"] >= 0.5
        assert finding.metrics["bpda_layers"] == []
        assert "TorchScript" in finding.evidence["bpda"] and "non-zero on every probe row" in finding.evidence["bpda"]


def test_a_torchscript_model_with_vanishing_gradients_is_stated(cnn, tiles, tmp_path):
    """A rounding front end inside a scripted model cannot be patched; the finding says so."""
    from redline.checks.evasion.fm01_pgd import ProjectedGradientDescent
    from redline.targets.resolve import load_target

    class Squeezed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(torch.round(x * 4) / 4)

    path = tmp_path / "squeezed.pt"
    torch.jit.save(torch.jit.script(Squeezed(cnn)), str(path))
    finding = ProjectedGradientDescent(epsilon=0.05, n_inputs=8, steps=5)(load_target(f"torch:{path}", data=tiles),
                                                                         tiles, budget=500)
    assert finding.status.value in ("vulnerable", "not_vulnerable")
    assert "vanish" in finding.evidence["bpda"] and "vanish" in finding.summary
