"""``python -m qicstats``: the command line, :func:`qicstats.cli.main`."""

import sys

from qicstats.cli import main

sys.exit(main())
