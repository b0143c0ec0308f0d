"""Shared fixtures (test helpers live in redline_testkit.py, a name no other folder uses)."""
from __future__ import annotations

import numpy as np
import pytest

from redline.data.base import Dataset
from redline_testkit import ArrayTarget


@pytest.fixture
def linear_target():
    rng = np.random.default_rng(0)
    return ArrayTarget(rng.normal(size=(5, 3)), rng.normal(size=3))


@pytest.fixture
def blob_data():
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=3, size=(3, 5))
    y = rng.integers(0, 3, size=600)
    x = (centres[y] + rng.normal(size=(600, 5))).astype(np.float32)
    return Dataset("blobs", x[:200], y[:200], x[200:400], y[200:400], x[400:], y[400:], spec="test:blobs")
