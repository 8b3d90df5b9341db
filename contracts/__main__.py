"""``python -m contracts``: the participant contract's tools (see ``contracts.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
