"""One zoo build per test session, in a temporary cache folder."""
from __future__ import annotations

import shutil
import time
import types

import pytest

from redline import zoo

#: The zoo's core entries, which these tests build. Entries added for particular checks are
#: built and tested by those checks' own tests, so this session stays quick.
CORE = ("mnist_cnn", "digits_mlp_overfit", "digits_mlp_regularized", "fair_logreg", "fair_logreg_labels", "fair_tree")


@pytest.fixture(scope="session")
def built_zoo(tmp_path_factory):
    """The core zoo models, built once into a session cache; ``seconds`` holds the build times."""
    root = tmp_path_factory.mktemp("redline-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDLINE_CACHE_DIR", str(root))
        seconds, targets = {}, {}
        for name in CORE:
            start = time.perf_counter()
            targets[name] = zoo.load_target(name)
            seconds[name] = time.perf_counter() - start
        yield types.SimpleNamespace(root=root, seconds=seconds, targets=targets)


@pytest.fixture
def private_cache(built_zoo, tmp_path, monkeypatch):
    """A copy of the session cache that a test may damage."""
    root = tmp_path / "cache"
    shutil.copytree(built_zoo.root, root)
    monkeypatch.setenv("REDLINE_CACHE_DIR", str(root))
    return root
