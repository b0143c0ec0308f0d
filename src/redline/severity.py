"""Bug-bar severities, ordered so that findings can be compared and gated."""
from __future__ import annotations

import enum


class Severity(enum.IntEnum):
    """Severity of a finding on the AI/ML bug bar; ``NONE`` means nothing to fix."""

    NONE = 0
    LOW = 1
    MODERATE = 2
    IMPORTANT = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The spelling used in reports: ``Critical``, ``Important``, ``Moderate``, ``Low``, ``None``."""
        return self.name.capitalize()

    @classmethod
    def parse(cls, value: "str | Severity | None") -> "Severity":
        """Accept a label in any case (``critical``, ``Critical``) or a Severity."""
        if value is None:
            return cls.NONE
        if isinstance(value, Severity):
            return value
        key = str(value).strip().upper()
        if key in cls.__members__:
            return cls[key]
        choices = ", ".join(s.label.lower() for s in cls)
        raise ValueError(f"unknown severity {value!r} (choose from {choices})")

    def __str__(self) -> str:  # so f-strings print the report spelling
        return self.label
