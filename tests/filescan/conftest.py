import pytest

from redline.filescan import scan_path


class Scanner:
    """Write bytes to a file in a temporary folder and scan it."""

    def __init__(self, folder):
        self.folder = folder
        self.canary = folder / "CANARY"

    @property
    def command(self) -> str:
        return f"touch {self.canary}"

    def __call__(self, data: bytes, name: str = "model.bin"):
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        report = scan_path(path)
        assert not self.canary.exists(), "scanning must never run the payload"
        return report


@pytest.fixture
def scan(tmp_path):
    return Scanner(tmp_path)


def details(report) -> str:
    return "\n".join(f"{i.severity} {i.kind} {i.member}: {i.detail}" for i in report.issues)


def assert_verdict(report, verdict, *needles, kinds=()):
    text = details(report)
    assert report.verdict == verdict, f"expected {verdict}, got {report.verdict}:\n{text}"
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    for kind in kinds:
        assert any(i.kind == kind for i in report.issues), f"no {kind} issue in:\n{text}"


@pytest.fixture
def check():
    return assert_verdict
