"""``python -m daskcluster``: the same as the ``daskcluster`` command.

Guarded, so that importing this module (by a worker started with ``spawn``, or by anything
that imports ``daskcluster.__main__`` by name) runs nothing.
"""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
