"""Training-time defences against poisoning: one interface (:class:`~.base.Sanitiser`,
a keep-mask over the training rows), the screening methods in :mod:`.sanitisers`, and
scikit-learn learners that screen their own data in :mod:`.learners` (imports sklearn)."""
from __future__ import annotations

from .base import Fitter, Sanitiser

__all__ = ["Fitter", "Sanitiser"]
