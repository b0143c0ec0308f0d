"""``python -m redline``: the same as the ``redline`` command."""
import sys

from .cli import main

sys.exit(main())
