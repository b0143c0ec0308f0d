"""What the benchmarks share to run ART on the same model as redline: a row counter around
the module (so both sides' model queries are counted the same way) and ART's classifier.

Imported by the ``bench_*.py`` scripts, which run with this folder on ``sys.path``.
"""
from __future__ import annotations


class RowCounter:
    """Rows the wrapped module has answered; reset ``rows`` between runs."""

    def __init__(self):
        self.rows = 0


def counting_module(module, counter: RowCounter):
    """``module`` behind a wrapper that adds every batch's row count to ``counter``."""
    import torch

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, t):
            counter.rows += int(t.shape[0])
            return self.inner(t.float())  # ART sometimes hands float64 batches

    return Counting(module).eval()


def art_classifier(module, n_classes: int, input_shape, counter: RowCounter | None = None, **kwargs):
    """ART's PyTorchClassifier on ``module`` (counted when ``counter`` is given), inputs in [0, 1]."""
    import torch
    from art.estimators.classification import PyTorchClassifier

    if counter is not None:
        module = counting_module(module, counter)
    return PyTorchClassifier(module, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(input_shape),
                             nb_classes=n_classes, clip_values=(0.0, 1.0), **kwargs)
