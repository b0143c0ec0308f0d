"""`import redline` and the CLI's start-up stay light: heavy frameworks load only when used."""
import subprocess
import sys

HEAVY = ("torch", "sklearn", "onnxruntime", "onnx", "matplotlib", "scipy", "numpy", "pandas", "jsonschema")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return [m for m in out.strip().split(",") if m]


def test_import_redline_loads_no_framework():
    assert _loaded_after("import redline") == []


def test_building_the_cli_loads_no_framework():
    # Every sub-command's parser is built for `redline --help` and `redline scan-files`.
    assert _loaded_after("from redline.cli import build_parser; build_parser()") == []


def test_help_works_for_every_command():
    from redline.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("modes", "scan", "scan-files", "sign", "verify", "bom", "deps", "threat-model", "triage", "demo"):
        assert name in commands, name
        text = commands[name].format_help()
        assert "xample" in text, f"{name} --help has no example"
