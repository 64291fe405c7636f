"""``python -m nbtoolkit.ccs``: the CCS command line (:mod:`nbtoolkit.cli.ccs`)."""

import sys

from ..cli.ccs import main

sys.exit(main())
