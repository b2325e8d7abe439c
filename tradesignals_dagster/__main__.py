"""``python -m tradesignals_dagster``: the ``tradesignals`` command."""

import sys

from tradesignals_dagster.cli import main

sys.exit(main())
