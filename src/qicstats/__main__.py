import sys

from qicstats.cli import main

sys.exit(main())
