"""What a local worker needs before its first job, imported once in the forkserver that
forks the workers: each worker then starts with redline, its checks and the heavy libraries
already in memory (shared copy-on-write) instead of paying seconds of imports per worker.

Only imports: nothing here may start a thread pool (OpenMP, BLAS), which a fork would copy
in a broken state. A library that is missing or fails to import is left to the job, which
then reports it as the job's own error.
"""
from __future__ import annotations

import importlib

# The slowest imports of a typical job, measured with `python -X importtime`.
HEAVY = ("numpy", "scipy.stats", "pandas", "sklearn.base", "sklearn.linear_model", "torch", "onnx", "skops.io",
         "matplotlib.figure", "matplotlib.backends.backend_agg", "redline.pipeline.runner",
         "redline.report.writers", "redline.zoo", "redline.util.plots")


def _first_plot() -> None:
    """A job's first plot loads fonts and the renderer (seconds on a busy machine); later ones do not."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), layout="constrained")
    fig.add_subplot().set_title("warm")
    fig.savefig(io.BytesIO(), format="png")


def _warm() -> None:
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a job that needs it says why, as its own error
            pass
    try:
        _first_plot()
    except Exception:  # noqa: BLE001
        pass
    try:
        from ..checks import all_checks

        all_checks()  # every check module, as each job's plan imports them
    except Exception:  # noqa: BLE001
        pass


_warm()
