"""Corruption libraries for FM16 common corruption: images (:mod:`.images`: ImageNet-C and
MNIST-C style families on (n, C, H, W) batches) and tables (:mod:`.tabular`: the faults of
data pipelines on (n, d) rows). Both are plain numpy, five severities per family and
deterministic from a numpy Generator.

:func:`families` names the families of one kind without the caller importing both modules
(a tabular run never loads the image library).
"""
from __future__ import annotations

from typing import Any

KINDS = ("image", "tabular")


def families(kind: str) -> dict[str, Any]:
    """name -> corruption, for ``kind`` 'image' or 'tabular'."""
    if kind == "image":
        from .images import IMAGE_FAMILIES

        return IMAGE_FAMILIES
    if kind == "tabular":
        from .tabular import TABULAR_FAMILIES

        return TABULAR_FAMILIES
    raise ValueError(f"corruption kind must be one of {', '.join(KINDS)}, not {kind!r}")
