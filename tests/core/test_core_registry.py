"""The check registry finds every check by itself: a check module is a ``fmNN_<name>.py``
file in a family folder under redline/checks, and no list has to name it."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import redline.checks
from redline.checks import CHECK_MODULE_NAME, Check, all_checks, check_modules


def _every_module_under_checks() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(redline.checks.__path__, "redline.checks.")]


def test_check_modules_are_the_fm_files_of_the_family_folders():
    modules = check_modules()
    assert modules and list(modules) == sorted(modules)
    for name in modules:
        _, _, family, module = name.split(".")
        assert CHECK_MODULE_NAME.fullmatch(module) and family != "__pycache__"
    expected = {name for name in _every_module_under_checks()
                if name.count(".") == 3 and CHECK_MODULE_NAME.fullmatch(name.rsplit(".", 1)[1])}
    assert set(modules) == expected


def test_every_check_class_under_checks_is_registered():
    # A check written in a file the registry does not read (misnamed, or a helper module)
    # would silently never run; every concrete Check with an id must be found.
    registered = all_checks()
    for name in _every_module_under_checks():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Check) and obj.__module__ == name
                    and not inspect.isabstract(obj) and getattr(obj, "id", None)):
                assert registered.get(obj.id) is obj, f"{name}.{obj.__name__} ({obj.id}) is not registered"


def test_the_registry_stays_light():
    import subprocess
    import sys

    probe = "import sys, redline.checks; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"
