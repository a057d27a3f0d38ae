"""``python -m facezoo`` runs the same command line as ``facezoo``."""

import sys

from facezoo.cli import main

sys.exit(main())
