"""Report formats are declared once, in report/writers.py: the scan command's --format help,
its output file names and the files a forced re-scan clears all follow that table."""
from __future__ import annotations

import importlib

from redline.pipeline import commands, runner
from redline.report import writers
from redline.report.writers import Format


def test_every_format_has_a_writer_module_and_a_file_name():
    for fmt in Format:
        module = importlib.import_module(f"redline.report.{writers._MODULES[fmt]}")
        assert callable(module.render) and fmt.filename.startswith("report.")


def test_the_scan_command_and_the_runner_follow_the_table():
    assert commands.FORMAT_CHOICES.split(",") == [fmt.value for fmt in Format]
    assert {commands._file_name(fmt.value) for fmt in Format} == {fmt.filename for fmt in Format}
    assert {fmt.filename for fmt in Format} <= set(runner._OWN_OUTPUTS)
