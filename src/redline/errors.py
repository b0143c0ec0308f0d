"""Exceptions that carry a one-line message for the user (the CLI prints them, exit 2)."""


class RedlineError(Exception):
    """Base class: an error the user can fix; its message is shown as is."""


class UsageError(RedlineError):
    """Bad command-line or API arguments."""


class TargetError(RedlineError):
    """The target cannot be loaded, reached or queried."""


class DataError(RedlineError):
    """The data set is missing, malformed or does not fit the target."""


class UnsafeModelError(TargetError):
    """A model file failed the static scan and was not loaded."""


class BudgetExceeded(RedlineError):
    """A check tried to send more attack queries than its budget allows."""
