"""Demo targets with known weaknesses (positive controls) and hardened twins (negative controls).

Models train deterministically on built-in data the first time they are asked for and are
cached (see :mod:`redline.zoo.cache`). Importing this package is cheap: torch and
scikit-learn load only when a model is built or loaded.

    >>> from redline import zoo
    >>> zoo.names()[:2]
    ['mnist_cnn', 'digits_mlp_overfit']
    >>> target = zoo.load_target("fair_logreg")          # doctest: +SKIP
    >>> data = zoo.load_data_for("fair_logreg")          # doctest: +SKIP
"""
from .build import agent_names, build_all, describe, entry, load_data_for, load_target, names

__all__ = ["agent_names", "build_all", "describe", "entry", "load_data_for", "load_target", "names"]
