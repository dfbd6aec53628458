"""``python -m pihub`` is ``pihub``."""

import sys

from pihub.cli import main

sys.exit(main())
