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


class OutputError(OSError):
    """A file redline writes into its output folder (``--out``) could not be written: a full
    disk, a file-size limit or quota, a read-only or failing file system. Raised as
    ``OutputError(errno, strerror, path)``; ``str()`` is one line naming the file and the
    OS error.

    Not a RedlineError: it is no fault of the arguments, and no check may turn it into its
    own ``error`` finding. A scan or campaign stops (as on Ctrl-C), keeping what finished for
    ``--resume``; ``kept`` says how many finished checks (or jobs) that is, when known.
    """

    kept: int | None = None

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror or 'input/output error'}"
