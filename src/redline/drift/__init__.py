"""Distribution shift between a reference sample and a batch from where the model runs now
(a deployment sample, a window of live traffic): detecting it with two-sample tests
(``ShiftDetector``, fitted once and tested on any number of batches; see :mod:`.detect` for
the methods and their cost) and estimating what it does to accuracy without the batch's
labels (:mod:`.estimate`).

Importing this package is cheap: scikit-learn loads only inside the functions that need it.
"""
from .detect import ShiftDetector
from .result import ShiftTest

__all__ = ["ShiftDetector", "ShiftTest"]
