"""The in-domain reference sample a defence compares live inputs with (drift, out-of-domain)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError


def reference_rows(spec: str, most: int, seed: int, owner: str) -> np.ndarray:
    """The rows of data ``spec`` (every role but a deployment sample; a bare ``.npz`` path is
    read as ``npz:``), a seeded sample of at most ``most`` of them. A reference that cannot
    be read is a usage error naming ``owner``, the defence that asked for it."""
    from ..data import load_data

    spec = spec.strip()
    if ":" not in spec.split("/")[0] and Path(spec).suffix.lower() == ".npz":
        spec = f"npz:{spec}"
    try:
        data = load_data(spec)
    except DataError as exc:
        raise UsageError(f"{owner}: reference: {exc}") from None
    parts = [np.asarray(data.x(role), np.float64) for role in data.reference_roles]
    rows = np.concatenate(parts) if parts else np.zeros((0,))
    if len(rows) > most:
        keep = np.random.default_rng(seed).choice(len(rows), int(most), replace=False)
        rows = rows[np.sort(keep)]
    return rows
