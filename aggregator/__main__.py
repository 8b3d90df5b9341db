"""``python -m aggregator``: the same as the ``status-aggregator`` command."""

import sys

from ._cli import main

sys.exit(main())
