"""``python -m codyn.serve``: the same as ``codyn serve``."""

import sys

from codyn.serve.cli import main

sys.exit(main())
