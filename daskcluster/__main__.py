"""``python -m daskcluster``: the same as the ``daskcluster`` command."""

import sys

from .cli import main

sys.exit(main())
