"""One zoo build per test session, in a temporary cache folder."""
from __future__ import annotations

import shutil
import types

import pytest

from redline import zoo


@pytest.fixture(scope="session")
def built_zoo(tmp_path_factory):
    """Every zoo model, built once into a session cache; ``seconds`` holds the build times."""
    root = tmp_path_factory.mktemp("redline-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDLINE_CACHE_DIR", str(root))
        seconds = zoo.build_all()
        targets = {name: zoo.load_target(name) for name in zoo.names()}
        yield types.SimpleNamespace(root=root, seconds=seconds, targets=targets)


@pytest.fixture
def private_cache(built_zoo, tmp_path, monkeypatch):
    """A copy of the session cache that a test may damage."""
    root = tmp_path / "cache"
    shutil.copytree(built_zoo.root, root)
    monkeypatch.setenv("REDLINE_CACHE_DIR", str(root))
    return root
