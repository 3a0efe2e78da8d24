"""``python -m scalefit.cli``."""

import sys

from scalefit.cli import main

sys.exit(main())
