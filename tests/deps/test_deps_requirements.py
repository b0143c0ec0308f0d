from importlib import metadata

import pytest

from redline.deps.inputs import from_environment, from_requirements
from redline.errors import UsageError


def test_requirements_keep_pins_and_report_the_rest(requirements):
    inventory = from_requirements(requirements)
    assert inventory.packages == {
        "pyyaml": "5.3",
        "requests": "2.28.1",
        "numpy": "1.21.9",
        "flask": "2.0.0",
        "torch": "2.13.0",
        "jinja2": "3.0.0",
        "pillow": "9.0.0",
        "evil-pkg": "1.0",  # from the -r include
    }
    assert inventory.unchecked == [("scikit-learn>=1.0", "unpinned")]


def test_option_lines_continuations_urls_and_wildcards(tmp_path):
    path = tmp_path / "req.txt"
    path.write_text(
        "--extra-index-url https://example.invalid\n"
        "-c constraints.txt\n"
        "--hash=sha256:00\n"
        "alpha==1.0 \\\n"
        "    --hash=sha256:11 \\\n"
        "    --hash=sha256:22\n"
        "beta===2.0  # arbitrary-equality pin\n"
        "gamma==1.*\n"
        "delta\n"
        "epsilon>=1,<2\n"
        "zeta @ https://example.invalid/zeta-1.0.tar.gz\n"
        "-e ./local-package\n"
        "url#fragment==1.0\n"
    )
    # "#" inside a token is not a comment: pip reads "url#fragment==1.0" as a (bad) requirement
    with pytest.raises(UsageError, match=r"req.txt:13"):
        from_requirements(path)
    path.write_text(path.read_text().replace("url#fragment==1.0\n", ""))
    inventory = from_requirements(path)
    assert inventory.packages == {"alpha": "1.0", "beta": "2.0"}
    reasons = dict(inventory.unchecked)
    assert reasons["gamma==1.*"] == "unpinned"
    assert reasons["delta"] == "unpinned"
    assert reasons["epsilon>=1,<2"] == "unpinned"
    assert reasons["zeta @ https://example.invalid/zeta-1.0.tar.gz"].startswith("direct URL")
    assert reasons["-e ./local-package"].startswith("editable")


def test_conflicting_pins_and_missing_files_are_usage_errors(tmp_path):
    path = tmp_path / "req.txt"
    path.write_text("Foo==1.0\nfoo==1.0\n")
    assert from_requirements(path).packages == {"foo": "1.0"}  # the same pin twice is fine
    path.write_text("Foo==1.0\nFOO==2.0\n")
    with pytest.raises(UsageError, match="pinned to both"):
        from_requirements(path)
    with pytest.raises(UsageError, match="no such requirements file"):
        from_requirements(tmp_path / "absent.txt")


def test_include_cycles_are_read_once(tmp_path):
    (tmp_path / "a.txt").write_text("-r b.txt\nalpha==1\n")
    (tmp_path / "b.txt").write_text("--requirement=a.txt\nbeta==2\n")
    assert from_requirements(tmp_path / "a.txt").packages == {"beta": "2", "alpha": "1"}


def test_environment_lists_installed_distributions():
    inventory = from_environment()
    assert inventory.packages["packaging"] == metadata.version("packaging")
    assert inventory.packages["pytest"] == metadata.version("pytest")
    assert all(name == name.lower() for name in inventory.packages)
