"""`python -m tinyedge`: Ctrl-C at any moment, even while the CLI is still loading, exits 130."""

import sys

try:
    from tinyedge.cli import app

    app()
except KeyboardInterrupt:
    sys.exit(130)
