"""``python -m tripwire``: the same as the ``tripwire`` command."""

import sys

from tripwire.cli import main

sys.exit(main())
