"""Distribution-shift detection: two-sample tests of a batch (a deployment sample, a window
of live traffic) against a reference sample. ``ShiftDetector`` is fitted once and tested on
any number of batches; see ``redline.drift.detect`` for the methods and their cost."""
from .detect import ShiftDetector
from .result import ShiftTest

__all__ = ["ShiftDetector", "ShiftTest"]
