"""``python -m explorer``: see explorer/cli/main.py.

May import: cli.
"""

import sys

from explorer.cli.main import main

sys.exit(main())
